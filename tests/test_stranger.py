"""mlperf in someone else's repository: the wheel, installed into a fresh venv, used there.

The project here knows nothing of mlperf: a src-layout package, its benchmarks under
``tests/bench/`` (one of them on the ``dask_client`` fixture the plugin ships), its
pytest configuration in ``pyproject.toml``.  Everything runs from that project's
directory, with that venv's interpreter, the way its contributors would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _repos import git, new_repo

from mlperf._optional import available
from mlperf.ab.trees import venv_over_this_one

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.timing,  # it measures (a 2x change, far beyond any noise), so it runs alone
    pytest.mark.skipif(
        not available("distributed"),
        reason='the dask_client benchmark needs the dask extra: pip install "pytest-mlperf[dask]"',
    ),
]

PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "stranger"
version = "1.0"

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

PACKAGE = """
import os


def work(n):
    factor = float(os.environ.get("STRANGER_SLOWDOWN", "1"))
    return sum(i * i for i in range(int(n * factor)))
"""

BENCH = """
import stranger


def test_work(benchmark):
    assert benchmark(stranger.work, 20_000) > 0


def test_on_dask(benchmark, dask_client):
    future = dask_client.submit(sum, range(1000))
    assert future.result() == 499500
    benchmark(stranger.work, 2_000)
"""

UNIT = """
import stranger


def test_work_is_a_sum_of_squares():
    assert stranger.work(3) == 5
"""


def _run(python: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    full.update(env)
    done = subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    transcript = os.environ.get("MLPERF_STRANGER_TRANSCRIPT")  # a file: what a user would see
    if transcript:
        with open(transcript, "a", encoding="utf-8") as fh:
            shown = " ".join(f"{k}={v}" for k, v in env.items())
            fh.write(f"$ {shown} {Path(python).name} {' '.join(args)}   # exit {done.returncode}\n")
            fh.write(done.stdout + done.stderr + "\n")
    return done


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the project, its venv's python) with mlperf installed from a freshly built wheel."""
    tmp = tmp_path_factory.mktemp("stranger")
    wheels = tmp / "wheels"
    build = _run(
        Path(sys.executable),
        ROOT,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(wheels),
        str(ROOT),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("pytest_mlperf-*.whl")
    python = venv_over_this_one(tmp / "venv")
    assert python is not None
    project = new_repo(tmp / "project")
    for rel, text in {
        "pyproject.toml": PYPROJECT,
        "src/stranger/__init__.py": PACKAGE,
        "tests/bench/test_speed.py": BENCH,
        "tests/test_unit.py": UNIT,
        ".gitignore": ".cache/\n*.egg-info/\nbuild/\n",
    }.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    for args in (["--no-deps", str(wheel)], ["--no-deps", "--no-build-isolation", "-e", "."]):
        done = _run(python, project, "-m", "pip", "install", "-q", *args)
        assert done.returncode == 0, done.stdout + done.stderr
    where = _run(python, project, "-c", "import mlperf; print(mlperf.__file__)").stdout
    assert str(tmp / "venv") in where, where  # the wheel's mlperf, not this checkout's
    git(project, "add", ".")
    git(project, "commit", "-qm", "stranger 1.0")
    return project, python


FAST = ("--benchmark-max-time=0.1", "--benchmark-min-rounds=20", "-p", "no:cacheprovider")


def test_record_gate_and_require_a_baseline_in_a_strangers_project(
    stranger: tuple[Path, Path],
) -> None:
    project, python = stranger
    first = _run(
        python, project, "-m", "pytest", "--benchmark-enable", "--mlperf-save-baseline", *FAST
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "mlperf: baseline saved to" in first.stdout
    assert list((project / "baselines").glob("*/speed.json"))  # one file per benchmark file

    again = _run(python, project, "-m", "pytest", "--benchmark-enable", *FAST)
    assert again.returncode == 0, again.stdout + again.stderr
    latest = json.loads((project / "reports" / "latest.json").read_text())
    verdicts = {b["id"]: b["verdict"]["time"] for b in latest["benchmarks"]}
    assert set(verdicts) == {
        "tests/bench/test_speed.py::test_work",
        "tests/bench/test_speed.py::test_on_dask",
    }
    assert "new" not in verdicts.values() and "REGRESSION" not in verdicts.values()

    slower = _run(
        python,
        project,
        "-m",
        "pytest",
        "--benchmark-enable",
        "-k",
        "test_work and not sum_of_squares",  # the unit test would fail on its own
        *FAST,
        STRANGER_SLOWDOWN="2",
    )
    assert slower.returncode == 1, slower.stdout  # the gate's failure: every test passed
    assert "1 passed" in slower.stdout and "mlperf: 1 REGRESSION(s)" in slower.stdout

    (project / "tests" / "bench" / "test_more.py").write_text(
        "import stranger\n\ndef test_more(benchmark):\n    benchmark(stranger.work, 500)\n"
    )
    try:
        required = _run(
            python,
            project,
            "-m",
            "pytest",
            "--benchmark-enable",
            "--mlperf-require-baseline",
            "-k",
            "test_more",
            *FAST,
        )
    finally:
        (project / "tests" / "bench" / "test_more.py").unlink()
    assert required.returncode == 1, required.stdout
    assert "no stored baseline" in required.stdout
    assert "--mlperf-save-baseline" in required.stdout


def test_mlperf_ab_decides_with_the_projects_own_configuration(stranger: tuple[Path, Path]) -> None:
    project, python = stranger
    (project / "src" / "stranger" / "__init__.py").write_text(
        PACKAGE.replace('os.environ.get("STRANGER_SLOWDOWN", "1")', '"2"')
    )
    git(project, "commit", "-qam", "stranger 1.1: twice the work")
    shutil.rmtree(project / "reports", ignore_errors=True)
    out = project.parent / "ab.json"
    ab = _run(
        python, project, "-m", "mlperf.cli", "ab", "HEAD~1", "--max-time", "0.1", "--json", str(out)
    )
    assert ab.returncode == 1, ab.stdout + ab.stderr
    verdicts = {b["id"]: b["verdict"] for b in json.loads(out.read_text())["benchmarks"]}
    assert verdicts["tests/bench/test_speed.py::test_work"] == "REGRESSION", ab.stdout
    assert "tests/bench/test_speed.py::test_on_dask" in verdicts  # the dask fixture, in workers
    assert "stranger from .cache/mlperf/ab/trees/" in ab.stderr  # base ran its own code

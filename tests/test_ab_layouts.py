"""``mlperf ab`` measures each revision's own code, whatever the project's layout and install.

Each test builds a small project in a temporary git repository, installs it into a
fresh venv the way its users do (editable or not; the venv sees this environment's
packages, mlperf included, below its own), and makes three commits: the code, a
README-only change (identical code), and a change in the *package* (not in the
benchmarks) that makes one of two benchmarks about 2x slower.  Then, from the
repository, as a user would:

* ``mlperf ab HEAD~1`` (base = a worktree, head = the working tree) must flag the
  slowed benchmark and only it;
* ``mlperf ab HEAD~2 HEAD~1`` (two worktrees, identical code) must flag nothing.

A planted slowdown that ``mlperf ab`` misses is exactly the failure this guards
against: before each side imported its own code, a src layout measured the
installed package on both sides and printed ``same``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from _repos import git, new_repo

from mlperf.ab.trees import venv_over_this_one

pytestmark = [
    pytest.mark.xdist_group("ab-layouts"),  # each run measures on every CPU: one at a time
    pytest.mark.skipif(shutil.which("git") is None, reason="needs git: apt-get install git"),
]

LOOP = """
def work(n):
    total = 0
    for i in range(int(n * FACTOR)):
        total += i * i
    return total


def steady(n):
    total = 0
    for i in range(n):
        total += i * i
    return total
"""

BENCH = """
import PKG


def test_changed(benchmark):
    assert benchmark(PKG.work, 3000) > 0


def test_unchanged(benchmark):
    assert benchmark(PKG.steady, 3000) > 0
"""

UNIT = """
import PKG


def test_steady():
    assert PKG.steady(3) == 5
"""

C_EXT = """
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *work(PyObject *self, PyObject *args) {
    long n;
    volatile long total = 0;
    if (!PyArg_ParseTuple(args, "l", &n)) return NULL;
    for (long i = 0; i < (long)(n * 400 * FACTOR); i++) total += i * i;
    return PyLong_FromLong(total > 0 ? total : 1);
}

static PyMethodDef methods[] = {{"work", work, METH_VARARGS, "busy loop"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
"""


@dataclass
class Project:
    """A layout of the matrix: its files (FACTOR marks the planted change) and how it installs."""

    name: str
    package: str
    files: dict[str, str]
    editable: bool = True
    needs_gcc: bool = False
    subdir: str = ""  # the project's directory inside the repository (a monorepo)


def _pyproject(name: str, backend: str, extra: str = "") -> str:
    requires = {"setuptools": '["setuptools>=64"]', "hatchling": '["hatchling"]'}[backend]
    api = {"setuptools": "setuptools.build_meta", "hatchling": "hatchling.build"}[backend]
    return textwrap.dedent(f"""\
        [build-system]
        requires = {requires}
        build-backend = "{api}"

        [project]
        name = "{name}"
        version = "0.1"

        [tool.pytest.ini_options]
        testpaths = ["tests", "bench"]
        {extra}
        """)


def _common(package: str) -> dict[str, str]:
    return {
        "bench/test_bench.py": BENCH.replace("PKG", package),
        "tests/test_unit.py": UNIT.replace("PKG", package),
        "README.md": "a project\n",
        ".gitignore": "build/\n*.egg-info/\n*.so\n__pycache__/\n.cache/\nab-*.json\n",
    }


def _projects() -> list[Project]:
    flat = Project(
        "flat",
        "flatpkg",
        {
            "pyproject.toml": _pyproject(
                "flatpkg", "setuptools", '\n[tool.setuptools]\npackages = ["flatpkg"]'
            ),
            "flatpkg/__init__.py": "FACTOR = 1\n" + LOOP,
            **_common("flatpkg"),
        },
    )
    hatch_src = Project(
        "src-hatchling",
        "hatchpkg",
        {
            "pyproject.toml": _pyproject("hatchpkg", "hatchling"),
            "src/hatchpkg/__init__.py": "from hatchpkg._core import steady, work\n",
            "src/hatchpkg/_core.py": "FACTOR = 1\n" + LOOP,
            **_common("hatchpkg"),
        },
    )
    # An explicit per-package mapping makes setuptools install a meta-path finder, not a .pth path.
    finder = '\n[tool.setuptools]\npackages = ["stpkg"]\npackage-dir = {"stpkg" = "src/stpkg"}'
    st_src = Project(
        "src-setuptools",
        "stpkg",
        {
            "pyproject.toml": _pyproject("stpkg", "setuptools", finder),
            "src/stpkg/__init__.py": "FACTOR = 1\n" + LOOP,
            **_common("stpkg"),
        },
    )
    regular = Project(
        "src-setuptools-installed",
        "regpkg",
        {
            "pyproject.toml": _pyproject(
                "regpkg", "setuptools", '\n[tool.setuptools.packages.find]\nwhere = ["src"]'
            ),
            "src/regpkg/__init__.py": "FACTOR = 1\n" + LOOP,
            **_common("regpkg"),
        },
        editable=False,
    )
    c_ext = Project(
        "c-extension",
        "cpkg",
        {
            "pyproject.toml": _pyproject(
                "cpkg", "setuptools", '\n[tool.setuptools.packages.find]\nwhere = ["src"]'
            ),
            "setup.py": "from setuptools import Extension, setup\n"
            "setup(ext_modules=[Extension('cpkg._speed', ['src/cpkg/_speed.c'])])\n",
            "src/cpkg/__init__.py": "from cpkg._speed import work\n\n\n"
            + "def steady"
            + LOOP.split("def steady")[1],
            "src/cpkg/_speed.c": C_EXT.replace("FACTOR", "1"),
            **_common("cpkg"),
        },
        needs_gcc=True,
    )
    monorepo = Project(
        "monorepo-src",
        "monopkg",
        {
            "pyproject.toml": _pyproject("monopkg", "setuptools"),
            "src/monopkg/__init__.py": "FACTOR = 1\n" + LOOP,
            **_common("monopkg"),
        },
        subdir="services/api",
    )
    return [flat, hatch_src, st_src, regular, c_ext, monorepo]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _venv(where: Path) -> Path:
    """A fresh venv that sees this environment's packages below its own."""
    python = venv_over_this_one(where / "venv")
    assert python is not None
    return python


def _install(python: Path, root: Path, editable: bool) -> None:
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "--disable-pip-version-check",
        *(["-e"] if editable else []),
        str(root),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _make(project: Project, tmp: Path, factor: float = 2.0) -> tuple[Path, Path]:
    """The project's directory and the venv's python, installed at HEAD~2.

    HEAD~2 is the code, HEAD~1 a README change, HEAD the package's ``work`` *factor* times
    slower (the benchmark files never change).
    """
    if project.needs_gcc and shutil.which("gcc") is None:
        pytest.skip("the C-extension layout needs a C compiler: apt-get install gcc")
    repo = new_repo(tmp / project.name)
    where = repo / project.subdir
    _write(where, {k: v.replace("FACTOR = 2", "FACTOR = 1") for k, v in project.files.items()})
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "code")
    python = _venv(tmp)
    _install(python, where, project.editable)
    (where / "README.md").write_text("a project, documented\n")
    git(repo, "commit", "-qam", "docs only")
    planted = {
        k: v.replace("FACTOR = 1", "FACTOR = 2") for k, v in project.files.items() if "FACTOR" in v
    }
    if project.needs_gcc:  # the C loop is where the work is
        planted = {k: C_EXT.replace("FACTOR", "2") for k in project.files if k.endswith(".c")}
    _write(where, planted)
    git(repo, "commit", "-qam", "slower")
    return where, python


def _ab(python: Path, repo: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    out = repo / f"ab-{len(list(repo.glob('ab-*.json')))}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    proc = subprocess.run(
        [str(python), "-m", "mlperf.cli", "ab", *args, "--max-time", "0.15", "--json", str(out)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    data = json.loads(out.read_text()) if out.is_file() else {}
    return proc, data


def _verdicts(data: dict) -> dict[str, str]:
    return {b["id"].split("::")[-1]: b["verdict"] for b in data.get("benchmarks", [])}


@pytest.mark.parametrize("project", _projects(), ids=lambda p: p.name)
def test_each_side_measures_its_own_code(project: Project, tmp_path: Path) -> None:
    repo, python = _make(project, tmp_path)

    proc, data = _ab(python, repo, "HEAD~1")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log
    assert _verdicts(data)["test_changed"] == "REGRESSION", log
    assert _verdicts(data)["test_unchanged"] != "REGRESSION", log
    top = Path(git(repo, "rev-parse", "--show-toplevel"))
    trees = top / ".cache" / "mlperf" / "ab" / "trees"
    shown = str(trees.relative_to(repo)) if trees.is_relative_to(repo) else str(trees)
    verb = "built from" if project.needs_gcc else "from"
    assert f"{project.package} {verb} {shown}" in proc.stderr, (
        proc.stderr
    )  # where base's code came from

    proc, data = _ab(python, repo, "HEAD~2", "HEAD~1")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert set(_verdicts(data)) == {"test_changed", "test_unchanged"}, log
    assert "REGRESSION" not in set(_verdicts(data).values()), log
    if project.needs_gcc:  # HEAD~1 was built by the first run: reused, not rebuilt
        assert "(setup.py builds extension modules; reused)" in proc.stderr, proc.stderr
        assert "built now" in proc.stderr, proc.stderr  # HEAD~2 is new


def test_code_from_elsewhere_trips_the_provenance_guard(tmp_path: Path) -> None:
    project = next(p for p in _projects() if p.name == "src-setuptools")
    repo, python = _make(project, tmp_path)
    purelib = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    # A .pth line that puts the main checkout's sources ahead of everything, as some
    # tools' hooks do: every side would import the working tree's code.
    (purelib / "_hijack.pth").write_text(f"import sys; sys.path.insert(0, {str(repo / 'src')!r})\n")
    proc, data = _ab(python, repo, "HEAD~1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "imported stpkg from " + str(repo / "src" / "stpkg" / "__init__.py") in proc.stderr
    assert "not from its own revision" in proc.stderr
    assert "No verdict is given for code a side did not run" in proc.stderr
    assert not data  # nothing was decided, nothing was written


def test_several_paths_are_taken_after_the_revisions(tmp_path: Path) -> None:
    project = next(p for p in _projects() if p.name == "flat")
    project.files["bench/test_other.py"] = (
        "def test_other(benchmark):\n    benchmark(sum, range(10))\n"
    )
    repo, python = _make(project, tmp_path)
    proc, data = _ab(
        python,
        repo,
        "HEAD~2",
        "HEAD~1",
        "bench/test_bench.py",
        "bench/test_other.py",
        "--only",
        "unchanged or other",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set(_verdicts(data)) == {"test_unchanged", "test_other"}, proc.stderr
    proc, _ = _ab(python, repo, "HEAD~1", "bench/no_such_file.py")
    assert proc.returncode == 2
    assert "'bench/no_such_file.py' is neither a revision nor a file or directory" in proc.stderr

"""The composite GitHub Action (``action.yml``): its YAML, and its scripts run in a temp repo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _repos import slower_repo

ACTION = Path(__file__).resolve().parents[1] / "action.yml"

TOY = """
import os

def work(n):
    return sum(i * i for i in range(n))

N = int(20_000 * float(os.environ.get("TOY_SLOWDOWN", "1")))

def test_loop(benchmark):
    assert benchmark(work, N) > 0
"""


def _action() -> dict[str, Any]:
    data = yaml.safe_load(ACTION.read_text())
    assert isinstance(data, dict)
    return data


def _step(step_id: str) -> dict[str, Any]:
    return next(s for s in _action()["runs"]["steps"] if s.get("id") == step_id)


def test_the_action_is_a_composite_whose_scripts_never_paste_inputs() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    assert {"base", "paths", "args", "install", "python-version"} <= set(action["inputs"])
    assert action["outputs"]["exit-code"]["value"] == "${{ steps.ab.outputs.exit-code }}"
    for step in action["runs"]["steps"]:
        if "run" in step:  # inputs arrive as environment variables: no script injection
            assert "${{" not in step["run"], step["run"]
            assert step["shell"] == "bash"
    upload = next(s for s in action["runs"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["if"] == "always()"  # the result is kept when the gate fails


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A project whose head commit makes its benchmark 3x slower."""
    return slower_repo(
        tmp_path / "project", "test_toy.py", TOY, TOY.replace("20_000 *", "60_000 *")
    )


def _run_ab_step(
    cwd: Path, tmp: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    output, summary = tmp / "github_output", tmp / "step_summary"
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}
    full.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        OUT=str(tmp),
        GITHUB_OUTPUT=str(output),
        GITHUB_STEP_SUMMARY=str(summary),
        BASE="",
        PATHS="",
        ARGS="",
    )
    full.update(env)
    proc = subprocess.run(
        ["bash", "-c", _step("ab")["run"]],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return proc, output, summary


def test_the_ab_step_gates_a_pull_request_and_publishes_its_summary(
    repo: Path, tmp_path: Path
) -> None:
    proc, output, summary = _run_ab_step(
        repo, tmp_path, BASE="HEAD~1", PATHS="test_toy.py", ARGS="--max-time 0.05 --quiet"
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the REGRESSION fails the step
    assert "exit-code=1" in output.read_text()
    assert f"markdown={tmp_path}/mlperf-ab.md" in output.read_text()
    assert summary.read_text().startswith("### mlperf ab: 1 REGRESSION")
    assert (tmp_path / "mlperf-ab.json").is_file()


def test_the_ab_step_defaults_to_the_pull_requests_base_branch(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    proc, output, _ = _run_ab_step(
        clone, tmp_path, GITHUB_BASE_REF="main", PATHS="test_toy.py", ARGS="--max-time 0.05 --quiet"
    )
    assert "base origin/main (" in proc.stderr, proc.stderr  # compared with origin/main: same code
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "exit-code=0" in output.read_text()


def test_the_ab_step_without_a_base_says_what_to_set(repo: Path, tmp_path: Path) -> None:
    proc, _, _ = _run_ab_step(repo, tmp_path)
    assert proc.returncode == 2
    assert "set the action's 'base' input, or run it on pull_request" in proc.stderr

"""The `mlperf baseline` subcommands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlperf.baselines import save_records
from mlperf.cli import main


def _rec(bid: str, median: float) -> dict:
    samples = [median * (1 + 0.01 * (i % 5)) for i in range(30)]
    s = {"n": 30, "median": median, "iqr": 0.0, "min": min(samples), "mean": median}
    return {
        "id": bid,
        "metric": "cpu",
        "cpu": {**s, "samples": samples},
        "wall": {**s, "samples": samples},
        "memory": {"peak": 2**20, "python": 2**20, "rss": None},
    }


def test_show_lists_this_machines_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_records(tmp_path, [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    assert main(["baseline", "show", "--dir", str(tmp_path), "--machine", "box"]) == 0
    out = capsys.readouterr().out
    assert "suites/demo/test_a.py::test_a" in out and "2 ms" in out
    assert main(["baseline", "show", "--dir", str(tmp_path), "--machine", "other"]) == 1


def test_diff_flags_a_regression_between_two_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_records(tmp_path / "old", [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    save_records(tmp_path / "new", [_rec("suites/demo/test_a.py::test_a", 0.004)], machine="box")
    code = main(["baseline", "diff", str(tmp_path / "old" / "box"), str(tmp_path / "new" / "box")])
    assert code == 1
    assert "+100.0% (+" in capsys.readouterr().out  # the change with its interval, as every gate


def test_diff_accepts_a_run_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_records(tmp_path, [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    run = {"kind": "mlperf-run", "benchmarks": [_rec("suites/demo/test_a.py::test_a", 0.002)]}
    (tmp_path / "latest.json").write_text(json.dumps(run))
    assert main(["baseline", "diff", str(tmp_path / "box"), str(tmp_path / "latest.json")]) == 0
    assert "same" in capsys.readouterr().out


def test_corrupt_file_gives_exit_2_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "box"
    bad.mkdir()
    (bad / "demo.json").write_text("{")
    assert main(["baseline", "diff", str(bad), str(bad)]) == 2
    assert "make baseline" in capsys.readouterr().err

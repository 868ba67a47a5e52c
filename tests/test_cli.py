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
    err = capsys.readouterr().err
    assert f"`rm {bad / 'demo.json'}`" in err and "--mlperf-save-baseline" in err


# ------------------------------------------------------------- issue 14 items 8, 15


@pytest.mark.parametrize("value", ["nan", "NaN", "-0.1", "inf", "-inf", "x", ""])
def test_diff_refuses_a_threshold_that_is_not_a_finite_fraction(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """`--max-regression nan` turned the gate off in silence; a negative one ended in a
    traceback.  Both are refused with argparse's usage error (exit 2) naming the value."""
    save_records(tmp_path / "old", [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    save_records(tmp_path / "new", [_rec("suites/demo/test_a.py::test_a", 0.008)], machine="box")
    argv = ["baseline", "diff", str(tmp_path / "old" / "box"), str(tmp_path / "new" / "box")]
    with pytest.raises(SystemExit) as exc:
        main([*argv, f"--max-regression={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--max-regression: must be a finite number >= 0" in err and repr(value) in err


def test_diff_of_an_empty_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty folder compared nothing and exited 0."""
    save_records(tmp_path, [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["baseline", "diff", str(empty), str(tmp_path / "box")]) == 2
    assert f"{str(empty)!r} holds no baseline files" in capsys.readouterr().err
    assert main(["baseline", "diff", str(tmp_path / "nowhere"), str(tmp_path / "box")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_diff_that_compares_nothing_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_records(tmp_path / "old", [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    save_records(tmp_path / "new", [_rec("suites/demo/test_b.py::test_b", 0.002)], machine="box")
    code = main(["baseline", "diff", str(tmp_path / "old" / "box"), str(tmp_path / "new" / "box")])
    assert code == 2
    assert "nothing was compared" in capsys.readouterr().err


def test_save_outside_this_project_collects_what_pytest_collects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlperf baseline save` ran `pytest suites` everywhere: a project without ./suites
    got pytest's "file or directory not found"."""
    import mlperf.cli

    seen: list[list[str]] = []
    monkeypatch.setattr(mlperf.cli.subprocess, "call", lambda cmd: seen.append(cmd) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "save"]) == 0
    (tmp_path / "suites").mkdir()
    assert main(["baseline", "save", "--dir", "b"]) == 0
    assert "suites" not in seen[0] and "suites" in seen[1]
    assert "--mlperf-save-baseline" in seen[0] and "--mlperf-baselines=b" in seen[1]

"""The `mlperf baseline` subcommands, and a fuzz pass over every subcommand's arguments."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import mlperf.cli
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


def _old_and_new(
    tmp_path: Path, *, new_median: float = 0.002, new_id: str = "suites/demo/test_a.py::test_a"
) -> list[str]:
    """Two baseline folders: test_a at 2 ms in ``old``, *new_id* at *new_median* in ``new``."""
    save_records(tmp_path / "old", [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    save_records(tmp_path / "new", [_rec(new_id, new_median)], machine="box")
    return [str(tmp_path / "old" / "box"), str(tmp_path / "new" / "box")]


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
    code = main(["baseline", "diff", *_old_and_new(tmp_path, new_median=0.004)])
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
    argv = ["baseline", "diff", *_old_and_new(tmp_path, new_median=0.008)]
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
    code = main(["baseline", "diff", *_old_and_new(tmp_path, new_id="suites/demo/test_b.py::b")])
    assert code == 2
    assert "nothing was compared" in capsys.readouterr().err


def test_save_outside_this_project_collects_what_pytest_collects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlperf baseline save` ran `pytest suites` everywhere: a project without ./suites
    got pytest's "file or directory not found".  Now pytest's own configuration decides
    (testpaths; the mlperf_baselines ini option unless --dir is given)."""
    import mlperf.cli

    seen: list[list[str]] = []
    monkeypatch.setattr(mlperf.cli.subprocess, "call", lambda cmd: seen.append(cmd) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "save"]) == 0
    (tmp_path / "suites").mkdir()
    assert main(["baseline", "save", "--dir", "b"]) == 0
    assert main(["baseline", "save", "suites"]) == 0
    assert "suites" not in seen[0] and "suites" not in seen[1] and "suites" in seen[2]
    assert "--mlperf-save-baseline" in seen[0] and "--mlperf-baselines=b" in seen[1]
    assert not any(a.startswith("--mlperf-baselines") for a in seen[0])


def test_commands_read_the_folders_the_projects_pytest_configuration_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plugin honoured mlperf_baselines / mlperf_reports from the user's pytest
    configuration; `mlperf baseline show`, `mlperf history` and `mlperf report` looked in
    ./baselines and ./reports whatever it said, from any folder."""
    from mlperf.inifile import configured_dir

    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nmlperf_baselines = "perf/stored"\n'
        'mlperf_reports = "perf/runs"\n'
    )
    save_records(tmp_path / "perf" / "stored", [_rec("t.py::test_a", 0.002)], machine="box")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # relative to the rootdir, as the plugin takes them
    assert configured_dir("baselines") == str(tmp_path / "perf" / "stored")
    assert configured_dir("reports") == str(tmp_path / "perf" / "runs")
    assert main(["baseline", "show", "--machine", "box"]) == 0
    assert "t.py::test_a" in capsys.readouterr().out
    assert main(["history", "--machine", "box"]) == 2
    assert str(tmp_path / "perf" / "runs" / "history") in capsys.readouterr().err
    # a flag still wins; a folder without any pytest configuration keeps the plain defaults
    assert main(["baseline", "show", "--dir", str(tmp_path / "none"), "--machine", "box"]) == 1
    bare = tmp_path.parent / f"{tmp_path.name}-bare"  # basetemp holds no pytest configuration
    bare.mkdir()
    monkeypatch.chdir(bare)
    assert (configured_dir("baselines"), configured_dir("reports")) == ("baselines", "reports")


# ------------------------------------------------------------- a fuzz pass (issue 14)
#
# Hypothesis draws argument lists for `mlperf baseline save|show|diff`, `mlperf report`
# and `mlperf ab`: each subcommand's own options with values from a pool of awkward ones
# (NaN, infinities, negative and huge numbers, empty strings, Unicode, an empty folder, a
# corrupt file, a run file, a file where a folder belongs) and stray tokens.  Every
# argument list must end in an exit status (0, 1 on a regression, 2 with a sentence) and
# never in a traceback.  Every path is relative to a fresh temporary folder that is the
# working directory: the pool holds no absolute path and no `..` (`mlperf report --reports
# /` writes its page into the folder it is given).  `mlperf baseline save` starts no pytest
# (`subprocess.call` is replaced) and `mlperf ab` is only parsed: no A/B run here.

BID = "suites/demo/test_a.py::test_a"
#: two valid inputs for `mlperf baseline diff` (the second 2x slower)
BOTH = ["baselines/box", "new/box"]


def _prepare(root: Path) -> None:
    save_records(root / "baselines", [_rec(BID, 0.002)], machine="box")
    save_records(root / "new", [_rec(BID, 0.004)], machine="box")
    (root / "empty").mkdir()
    (root / "corrupt.json").write_text("{")
    (root / "file.txt").write_text("hello")
    run = json.dumps({"kind": "mlperf-run", "benchmarks": [_rec(BID, 0.002)]})
    (root / "run.json").write_text(run)
    (root / "reps").mkdir()
    (root / "reps" / "latest.json").write_text(run)
    (root / "badrun.json").write_text(json.dumps({"kind": "mlperf-run", "benchmarks": [{}]}))


POOL = [
    *("0", "1", "-1", "0.25", "nan", "-nan", "inf", "-inf", "1e309", "1e-320", "", " ", "x"),
    *("baselines", "baselines/box", "new/box", "box", "empty", "corrupt.json", "file.txt"),
    *("file.txt/x", "run.json", "badrun.json", "reps", "reps/latest.json", "nowhere", "-"),
    *("東京", "a b", "--", "-h"),
]
OPTIONS = {
    "save": ["--dir", "--pytest-args"],
    "show": ["--dir", "--machine"],
    "diff": ["--max-regression"],
    "report": ["--reports", "--baselines", "--output", "--machine", "--history"],
    "ab": [
        *("--path", "--only", "--rounds", "--max-time", "--threshold", "--pairs", "--lanes"),
        *("--build", "--json", "--markdown", "--extras"),
    ],
}
FLAGS = {
    "report": ["--self-contained"],
    "ab": ["-q", "--quiet", "--no-remeasure", "--no-extend", "--no-pin"],
}
# no absolute paths, no way out of the temporary folder, nothing a real argv cannot hold
text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=8
).filter(lambda t: not t.startswith(("/", "~")) and ".." not in t)
values = st.sampled_from(POOL) | text


@st.composite
def argv_of(draw: st.DrawFn, command: list[str]) -> list[str]:
    """*command* followed by up to five pieces: ``--opt value``, ``--opt=value``, a flag,
    a value alone (a positional or a stray token)."""
    name = command[-1] if command else ""
    options, flags = OPTIONS.get(name, []), FLAGS.get(name, [])
    pieces: list[str] = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["pair", "joined", "flag", "value"]))
        if kind == "pair" and options:
            pieces += [draw(st.sampled_from(options)), draw(values)]
        elif kind == "joined" and options:
            pieces.append(f"{draw(st.sampled_from(options))}={draw(values)}")
        elif kind == "flag" and flags:
            pieces.append(draw(st.sampled_from(flags)))
        else:
            pieces.append(draw(values))
    return [*command, *pieces]


@contextlib.contextmanager
def _sandbox() -> Iterator[Path]:
    """A fresh folder with the files above, as the working directory."""
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="mlperf-fuzz-") as tmp:
        root = Path(tmp)
        _prepare(root)
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(here)


def _run(argv: list[str]) -> tuple[int, str]:
    """(exit status, stdout + stderr) of ``mlperf *argv``; any exception but SystemExit
    propagates and fails the test with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: 0 after --help, 2 on a usage error
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue() + err.getvalue()


def _check(argv: list[str]) -> None:
    with _sandbox():
        code, printed = _run(argv)
    assert code in (0, 1, 2), (argv, code, printed)
    assert "Traceback" not in printed, (argv, printed)
    if code == 2:
        assert printed.strip(), f"{argv}: exit 2 without a word"


FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def no_pytest_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """``mlperf baseline save`` hands its command to this list instead of running pytest."""
    started: list[list[str]] = []
    monkeypatch.setattr(mlperf.cli.subprocess, "call", lambda cmd: started.append(cmd) or 0)
    return started


@FUZZ
@given(
    argv=st.sampled_from(
        [["baseline", "save"], ["baseline", "show"], ["baseline", "diff"], ["baseline"], []]
    ).flatmap(argv_of)
)
@example(argv=["baseline", "diff", "baselines/box", "new/box", "--max-regression", "nan"])
@example(argv=["baseline", "diff", "empty", "new/box"])
@example(argv=["baseline", "diff", "badrun.json", "run.json"])
@example(argv=["baseline", "diff", "file.txt", "corrupt.json"])
@example(argv=["baseline", "show", "--dir", "file.txt", "--machine", "東京"])
@example(argv=["baseline", "save", "--dir", "file.txt/x", "--pytest-args", "-x"])
def test_baseline_arguments_end_in_an_exit_status(
    argv: list[str], no_pytest_runs: list[list[str]]
) -> None:
    _check(argv)


@FUZZ
@given(argv=argv_of(["baseline", "diff"]).map(lambda a: [*a[:2], *BOTH, *a[2:]]))
@example(argv=["baseline", "diff", *BOTH, "--max-regression=--"])  # argparse passes [] on
def test_diff_compares_or_refuses_any_threshold(argv: list[str]) -> None:
    """Both inputs valid: whatever the threshold, a verdict (0 or 1) or exit 2 -- and
    exit 2 whenever the threshold is not a finite number >= 0."""
    with _sandbox():
        code, printed = _run(argv)
    assert code in (0, 1, 2) and "Traceback" not in printed, (argv, printed)
    given_thresholds = [a.split("=", 1)[1] for a in argv if a.startswith("--max-regression=")]
    given_thresholds += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--max-regression"]
    if "-h" in argv or "--help" in argv:
        return  # the help wins: argparse prints it and exits 0 before reading the rest
    for value in given_thresholds:
        try:
            ok = float(value) >= 0 and float(value) != float("inf")
        except ValueError:
            ok = False
        if not ok:
            assert code == 2, (argv, printed)


@FUZZ
@given(argv=argv_of(["report"]))
@example(argv=["report", "--reports", "file.txt"])
@example(argv=["report", "--reports", "reps", "--output", "empty"])
@example(argv=["report", "--reports", "file.txt/x"])
@example(argv=["report", "--history=--"])
def test_report_arguments_end_in_an_exit_status(argv: list[str]) -> None:
    _check(argv)


@FUZZ
@given(argv=argv_of(["ab"]).map(lambda a: [a[0], "HEAD", *a[1:]]))
def test_ab_arguments_parse_or_exit_2(argv: list[str]) -> None:
    """Parsing only: a namespace, or argparse's exit 2 with a usage line (0 for -h)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = mlperf.cli._parser().parse_args(argv)
        except SystemExit as exc:
            assert exc.code in (0, 2), (argv, exc.code)
            assert (out.getvalue() if exc.code == 0 else err.getvalue()).startswith("usage:")
            return
    assert args.command == "ab" and args.base == "HEAD"


@FUZZ
@given(argv=argv_of(["ab"]).map(lambda a: [a[0], "HEAD", *a[1:]]))
@example(argv=["ab", "HEAD", "--max-time", "nan"])
@example(argv=["ab", "HEAD", "--rounds=--"])  # argparse hands [] to run()
@example(argv=["ab", "HEAD", "--threshold", "inf"])
def test_ab_parser_refuses_numbers_that_would_disarm_it(argv: list[str]) -> None:
    """What the parser lets through, the run must be able to use: thresholds finite and
    >= 0, measuring times finite and > 0 (the stored-baseline gate's own rule)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            args = mlperf.cli._parser().parse_args(argv)
        except SystemExit:
            return
    assert 0 <= args.threshold < float("inf"), argv
    assert 0 < args.max_time < float("inf"), argv
    for name in ("rounds", "pairs", "lanes"):
        assert getattr(args, name) is None or isinstance(getattr(args, name), int), argv


# ----------------------------------------- pytest-benchmark's own JSON files (issue 11)

_PB_TOY = """
import os, time

def test_sleepy(benchmark):
    benchmark.pedantic(time.sleep, args=(float(os.environ["TOY_S"]),), rounds=15)
"""


def _pb_json(pytester: pytest.Pytester, name: str, seconds: float) -> Path:
    pytester.makepyfile(test_toy=_PB_TOY)
    out = pytester.path / f"{name}.json"
    os.environ["TOY_S"] = str(seconds)
    try:
        result = pytester.runpytest_subprocess(
            "-p", "no:mlperf", "--benchmark-enable", f"--benchmark-json={out}"
        )
    finally:
        del os.environ["TOY_S"]
    assert result.ret == 0, result.stdout.str()
    return out


def test_diff_reads_pytest_benchmark_json_files(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlperf baseline diff` refused the files pytest-benchmark itself writes."""
    old = _pb_json(pytester, "old", 0.002)
    new = _pb_json(pytester, "new", 0.006)
    assert main(["baseline", "diff", str(old), str(old)]) == 0
    assert "test_toy.py::test_sleepy: " in capsys.readouterr().out
    assert main(["baseline", "diff", str(old), str(new)]) == 1
    captured = capsys.readouterr()
    assert "REGRESSION [wall]" in captured.out and "wall-clock rounds only" in captured.err
    assert "two machines" not in captured.err  # both measured here

    # --benchmark-autosave without --benchmark-save-data keeps no per-round times
    bare = pytester.path / "bare.json"
    data = json.loads(old.read_text())
    del data["benchmarks"][0]["stats"]["data"]
    bare.write_text(json.dumps(data))
    assert main(["baseline", "diff", str(old), str(bare)]) == 2
    assert "--benchmark-save-data" in capsys.readouterr().err


def test_diff_warns_when_it_compares_two_machines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_records(tmp_path / "a", [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="box")
    save_records(tmp_path / "b", [_rec("suites/demo/test_a.py::test_a", 0.002)], machine="vm")
    assert main(["baseline", "diff", str(tmp_path / "a" / "box"), str(tmp_path / "a" / "box")]) == 0
    assert "two machines" not in capsys.readouterr().err
    assert main(["baseline", "diff", str(tmp_path / "a" / "box"), str(tmp_path / "b" / "vm")]) == 0
    assert "measured on two machines (box and vm)" in capsys.readouterr().err

"""``mlperf`` command line: ``baseline save|show|diff``, ``ab``, ``report``, ``history``."""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

from mlperf.records import (
    DEFAULT_BASELINES_DIR,
    DEFAULT_MAX_REGRESSION,
    DEFAULT_METRIC,
    RUN_KIND,
    samples_of,
)

if TYPE_CHECKING:
    from mlperf.records import BaselineEntry, ClockSummary, RunRecord

__all__ = ["main"]


def _threshold(text: str) -> float:
    """``--max-regression``: a finite fraction >= 0 (NaN would turn the gate off)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(
            f"must be a finite number >= 0 (0.25 means 25 %); got {text!r}"
        )
    return value


class _Loaded(NamedTuple):
    """What ``mlperf baseline diff`` compares on one side."""

    entries: dict[str, BaselineEntry]
    machine: str | None  # None: a folder whose files name no single machine
    pytest_benchmark: bool  # a pytest-benchmark JSON file: wall-clock rounds only


_WHAT = (
    "give a baseline folder (baselines/<machine-id>), a baseline file, a run file "
    "(reports/latest.json) or a pytest-benchmark JSON file (--benchmark-json)"
)


def _load(path: Path) -> _Loaded:
    """Benchmarks of a baseline file or machine folder, a run file (latest.json) or a
    pytest-benchmark JSON file.

    Raises
    ------
    BaselineError
        A missing path, a folder without baseline files, or a file that is none of
        these or is invalid; the message names it.
    """
    from mlperf.baselines import (
        BaselineError,
        entry_of,
        entry_problem,
        from_pytest_benchmark,
        load_file,
    )

    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise BaselineError(f"{str(path)!r} holds no baseline files (*.json); {_WHAT}")
        entries: dict[str, BaselineEntry] = {}
        machines = set()
        for f in files:
            data = load_file(f)
            entries.update(data["benchmarks"])
            machines.add(data["machine_id"])
        return _Loaded(entries, machines.pop() if len(machines) == 1 else None, False)
    if not path.exists():
        raise BaselineError(f"no such file or folder: {str(path)!r}; {_WHAT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"cannot read {str(path)!r} ({exc}); {_WHAT}") from None
    if isinstance(data, dict) and data.get("kind") == RUN_KIND:
        benchmarks = data.get("benchmarks")
        if not isinstance(benchmarks, list) or not all(
            isinstance(b, dict) and isinstance(b.get("id"), str) for b in benchmarks
        ):
            raise BaselineError(
                f"run file {str(path)!r} has no list of benchmarks with ids; write it again "
                "with a measured run (pytest --benchmark-enable)"
            )
        run = cast("RunRecord", data)
        found = {b["id"]: entry_of(b) for b in run["benchmarks"]}
        for bid, entry in found.items():
            problem = entry_problem(entry)
            if problem:
                raise BaselineError(
                    f"run file {str(path)!r}, benchmark {bid!r}: {problem}; write it again "
                    "with a measured run (pytest --benchmark-enable)"
                )
        machine = run.get("machine_id")
        return _Loaded(found, machine if isinstance(machine, str) else None, False)
    if isinstance(data, dict) and "machine_info" in data and "kind" not in data:
        entries, machine = from_pytest_benchmark(data, path)
        return _Loaded(entries, machine, True)
    stored = load_file(path)
    return _Loaded(stored["benchmarks"], stored["machine_id"], False)


def _baseline_show(args: argparse.Namespace) -> int:
    from mlperf.baselines import machine_id
    from mlperf.inifile import configured_dir

    folder = Path(args.dir or configured_dir("baselines")) / (args.machine or machine_id())
    stored = folder.is_dir() and any(folder.glob("*.json"))
    entries = _load(folder).entries if stored else {}
    if not entries:
        print(f"no baselines in {folder}; record them with `mlperf baseline save`", file=sys.stderr)
        return 1
    print(
        f"{'benchmark':70} {'metric':6} {'cpu median':>12} {'wall median':>12} {'peak MiB':>9}  "
        "recorded"
    )
    for bid, e in sorted(entries.items()):
        cpu, wall, memory = _median(e.get("cpu")), _median(e.get("wall")), e.get("memory")
        mem = memory.get("peak") if memory else None
        print(
            f"{bid:70} {e.get('metric', '?'):6} {_ms(cpu):>12} {_ms(wall):>12} "
            f"{'-' if mem is None else f'{mem / 2**20:.1f}':>9}  {e.get('recorded', '')}"
        )
    return 0


def _median(summary: ClockSummary | None) -> float | None:
    return summary.get("median") if summary else None


def _ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.4g} ms"


def _baseline_diff(args: argparse.Namespace) -> int:
    from mlperf.stats import compare_samples

    if not isinstance(args.max_regression, float):  # `--max-regression=--`: argparse gives []
        print(
            "mlperf baseline diff: --max-regression must be a finite number >= 0 (0.25 means "
            f"25 %); got {args.max_regression!r}",
            file=sys.stderr,
        )
        return 2
    before, after = _load(Path(args.old)), _load(Path(args.new))
    old, new = before.entries, after.entries
    if not set(old) & set(new):
        print(
            f"mlperf baseline diff: no benchmark is in both {args.old!r} ({len(old)}) and "
            f"{args.new!r} ({len(new)}): nothing was compared",
            file=sys.stderr,
        )
        return 2
    if before.machine and after.machine and before.machine != after.machine:
        print(
            f"mlperf baseline diff: warning: these were measured on two machines "
            f"({before.machine} and {after.machine}); a difference may be the machine's, "
            "not the code's",
            file=sys.stderr,
        )
    wall_only = before.pytest_benchmark or after.pytest_benchmark
    if wall_only:
        print(
            "mlperf baseline diff: a pytest-benchmark file holds wall-clock rounds only "
            "(its timer); every benchmark is compared on wall time",
            file=sys.stderr,
        )
    worst = 0
    for bid in sorted(set(old) | set(new)):
        if bid not in old or bid not in new:
            print(f"{bid}: only in {'new' if bid in new else 'old'}")
            continue
        metric = (
            "wall"
            if wall_only
            else new[bid].get("metric") or old[bid].get("metric") or DEFAULT_METRIC
        )
        a, b = samples_of(old[bid].get(metric)), samples_of(new[bid].get(metric))
        if not a or not b:
            print(f"{bid}: no {metric} samples to compare")
            continue
        cmp = compare_samples(a, b, max_regression=args.max_regression)
        worst = max(worst, cmp.verdict == "REGRESSION")
        print(f"{bid}: {cmp.describe()} [{metric}]")
    return int(worst)


def _baseline_save(args: argparse.Namespace) -> int:
    # No paths: what a plain `pytest` collects (testpaths, else the rootdir); no --dir: the
    # mlperf_baselines ini option of the project's pytest configuration, else baselines/.
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *args.paths,
        "--benchmark-enable",
        "--mlperf-save-baseline",
        *([f"--mlperf-baselines={args.dir}"] if args.dir else []),
        *args.pytest_args,
    ]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlperf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    base = sub.add_parser("baseline", help="record, show or compare stored baselines")
    bsub = base.add_subparsers(dest="action", required=True)
    save = bsub.add_parser("save", help="run the suites with benchmarks on and store the results")
    save.add_argument(
        "paths",
        nargs="*",
        help="test files or folders (default: what a plain `pytest` collects: the testpaths "
        "of your pytest configuration, else the rootdir)",
    )
    save.add_argument(
        "--dir",
        default=None,
        help="baselines directory (default: the mlperf_baselines ini option, else "
        f"{DEFAULT_BASELINES_DIR})",
    )
    save.add_argument(
        "--pytest-args",
        dest="pytest_args",
        nargs=argparse.REMAINDER,
        default=[],
        help="everything after this goes to pytest",
    )
    save.set_defaults(func=_baseline_save)
    show = bsub.add_parser("show", help="list this machine's stored baselines")
    show.add_argument(
        "--dir",
        default=None,
        help="baselines directory (default: the mlperf_baselines ini option, else "
        f"{DEFAULT_BASELINES_DIR})",
    )
    show.add_argument("--machine", default=None, help="machine id (default: this machine)")
    show.set_defaults(func=_baseline_show)
    diff = bsub.add_parser(
        "diff",
        help="compare two baseline files/folders, run files (latest.json) or pytest-benchmark "
        "JSON files (saved with --benchmark-save-data)",
    )
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument(
        "--max-regression",
        type=_threshold,
        default=DEFAULT_MAX_REGRESSION,
        metavar="FRACTION",
        help=f"smallest slowdown that counts (default: {DEFAULT_MAX_REGRESSION:g} = 25 %%)",
    )
    diff.set_defaults(func=_baseline_diff)

    ab = sub.add_parser("ab", help="same-run A/B of two revisions (the merge gate)")
    report = sub.add_parser(
        "report", help="write reports/index.html from the latest run, baselines and history"
    )
    history = sub.add_parser(
        "history", help="the steps in every benchmark's history; exit 1 on a recent slowdown"
    )
    modules = {"ab": "mlperf.ab.cli", "report": "mlperf.report", "history": "mlperf.report.trend"}
    for name, p in (("ab", ab), ("report", report), ("history", history)):
        try:
            module = importlib.import_module(modules[name])
        except ImportError as exc:  # keep the other subcommands usable; say why this one is not
            p.set_defaults(func=lambda _args, exc=exc, name=name: _unavailable(name, exc))
            continue
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def _unavailable(name: str, exc: ImportError) -> int:
    print(
        f'mlperf {name}: unavailable ({exc}); reinstall with: pip install -U "pytest-mlperf[all]"',
        file=sys.stderr,
    )
    return 2


def main(argv: list[str] | None = None) -> int:
    from mlperf.baselines import BaselineError

    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BaselineError as exc:
        print(f"mlperf: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

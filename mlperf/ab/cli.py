"""``mlperf ab BASE [HEAD] [PATH ...]``: the command line of the same-run A/B."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from mlperf._args import One, number
from mlperf.ab.code import BUILD_CHOICES
from mlperf.ab.compare import run_ab
from mlperf.ab.counts import compare_counts
from mlperf.ab.result import AbResult
from mlperf.ab.trees import prepare_sides, repo_root
from mlperf.ab.types import AbError, Settings
from mlperf.records import DEFAULT_AB_THRESHOLD as AB_THRESHOLD
from mlperf.records import DEFAULT_COUNT_THRESHOLD, DEFAULT_REPORTS_DIR

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlperf ab``."""
    import mlperf.ab

    parser.description = mlperf.ab.__doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("base", metavar="BASE", help="base revision, e.g. origin/main or HEAD~1")
    parser.add_argument(
        "rest",
        metavar="HEAD|PATH",
        nargs="*",
        default=[],
        help="head revision (default: the working tree, uncommitted changes included), then "
        "test files or directories to collect (default: what a plain `pytest` here collects: "
        "the testpaths of your pytest configuration, else this directory)",
    )
    parser.add_argument(
        "--path",
        dest="paths",
        nargs="+",
        action="extend",
        default=None,
        metavar="PATH",
        help="test files or directories to collect (repeatable; same as trailing PATHs)",
    )
    parser.add_argument(
        "--only",
        metavar="EXPR",
        default=None,
        action=One,
        help="pytest -k expression selecting benchmarks",
    )
    parser.add_argument(
        "--rounds",
        type=number(int, 2, inclusive=True),
        action=One,
        default=None,
        metavar="N",
        help="measured rounds per side and benchmark (default: as many as fit in --max-time, "
        "at least 20)",
    )
    parser.add_argument(
        "--max-time",
        type=number(float, 0, inclusive=False),
        action=One,
        default=Settings.max_time,
        metavar="SECONDS",
        help="measuring time per side and benchmark, in the benchmark's clock (CPU seconds unless "
        f"metric='wall'), when --rounds is not given (default: {Settings.max_time:g})",
    )
    parser.add_argument(
        "--threshold",
        type=number(float, 0, inclusive=True),
        action=One,
        default=AB_THRESHOLD,
        metavar="FRACTION",
        help=f"smallest change that counts, as a fraction (default: {AB_THRESHOLD:g} = "
        f"{AB_THRESHOLD * 100:.0f} %%)",
    )
    parser.add_argument(
        "--pairs",
        type=number(int, 1, inclusive=True),
        action=One,
        default=Settings.pairs,
        metavar="N",
        help="pairs of fresh worker processes the rounds are spread over "
        f"(default: {Settings.pairs})",
    )
    parser.add_argument(
        "--lanes",
        type=number(int, 1, inclusive=True),
        action=One,
        default=None,
        metavar="N",
        help="process pairs measured at once, each on its own CPU (default: one per CPU)",
    )
    parser.add_argument(
        "--clock",
        type=_clocks,
        action=One,
        default=("time",),
        metavar="CLOCKS",
        help="'time' (process CPU time of interleaved rounds; wall time for metric='wall'), "
        "'instructions' (each side's benchmarks counted once under callgrind, in one valgrind "
        "process per side; a count more than --count-threshold above base's is a REGRESSION), "
        "or both, comma-separated: 'time,instructions' ('cpu' means time) (default: time)",
    )
    parser.add_argument(
        "--count-threshold",
        type=number(float, 0, inclusive=True),
        action=One,
        default=DEFAULT_COUNT_THRESHOLD,
        metavar="FRACTION",
        help="instruction clock: smallest change that counts "
        f"(default: {DEFAULT_COUNT_THRESHOLD:g})",
    )
    parser.add_argument(
        "--build",
        choices=BUILD_CHOICES,
        default="auto",
        help="build each revision with the project's own build backend into a cache keyed by its "
        "tree: 'auto' when the project has compiled extensions, generated modules or build hooks, "
        "'always', or 'never' (import the sources as they are) (default: auto)",
    )
    parser.add_argument(
        "--json",
        action=One,
        metavar="PATH",
        default=None,
        help="write the full result, samples included ('-': stdout)",
    )
    parser.add_argument(
        "--reports",
        action=One,
        default=None,
        metavar="DIR",
        help="also keep the result as <DIR>/ab/latest.json and latest.md, for `mlperf report` "
        f"(default: the mlperf_reports ini option, else {DEFAULT_REPORTS_DIR}; '' keeps nothing)",
    )
    parser.add_argument(
        "--markdown",
        metavar="PATH",
        default=None,
        action=One,
        help="write a PR-comment table ('-': stdout)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress lines: only the result (and errors) are printed",
    )
    parser.add_argument(
        "--no-remeasure", action="store_true", help="do not re-measure flagged benchmarks"
    )
    parser.add_argument(
        "--no-extend",
        action="store_true",
        help="do not measure inconclusive benchmarks a second time",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin each worker pair to one CPU"
    )
    parser.add_argument(
        "--extras",
        action=One,
        default="all",
        help="extras to install when a revision needs its own venv (default: all)",
    )


def _clocks(text: str) -> tuple[str, ...]:
    """``time``, ``instructions`` or both, comma-separated (``cpu`` is ``time``)."""
    names = tuple(dict.fromkeys("time" if c == "cpu" else c for c in text.split(",") if c))
    if not names or any(c not in ("time", "instructions") for c in names):
        raise argparse.ArgumentTypeError(
            f"clocks are 'time' (or 'cpu') and 'instructions', comma-separated; got {text!r}"
        )
    return names


def _split(repo: Path, rest: list[str], paths: list[str] | None) -> tuple[str | None, list[str]]:
    """(head revision or None, paths) from the trailing positionals, as git reads them."""
    head: str | None = None
    if rest:
        first = rest[0]
        is_path = Path(first).exists()
        is_rev = (
            subprocess.run(
                ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{first}^{{commit}}"],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )
        if is_path and is_rev:
            raise AbError(
                f"mlperf ab: {first!r} is both a revision and a path here; write "
                f"`--path {first}` for the path, or name the head revision before it"
            )
        if not is_path and not is_rev and ("/" in first or first.endswith(".py")):
            raise AbError(
                f"mlperf ab: {first!r} is neither a revision nor a file or directory "
                "here (PATHs are relative to this directory)"
            )
        if not is_path:
            head, rest = first, rest[1:]
    missing = [p for p in rest if not Path(p).exists()]
    if missing:
        raise AbError(
            f"mlperf ab: no such file or directory: {', '.join(map(repr, missing))} "
            "(PATHs are test files or directories, relative to this directory)"
        )
    return head, [*rest, *(paths or [])]


def run(args: argparse.Namespace) -> int:
    """``mlperf ab``: 1 on a REGRESSION, 2 when the comparison could not be made, else 0."""
    try:
        repo = repo_root()
        head_rev, paths = _split(repo, args.rest, args.paths)
        cache = repo / ".cache" / "mlperf" / "ab"
        base, head = prepare_sides(repo, args.base, head_rev, cache, args.extras, args.build)
        settings = Settings(
            paths=paths,
            only=args.only,
            rounds=args.rounds,
            max_time=args.max_time,
            pairs=args.pairs,
            lanes=args.lanes,
            pin=not args.no_pin,
            work_dir=cache,
            options={"mlperf_report": str(cache / "scratch-reports"), "mlperf_no_gate": True},
        )
        for side in (base, head):
            missing = [p for p in paths if not (side.root / p).exists()]
            if missing:
                raise AbError(
                    f"mlperf ab: {side.label} has no {', '.join(map(repr, missing))}; "
                    "give paths that exist in both revisions"
                )
        log = None if args.quiet else say
        say(f"mlperf ab: base {base.label} vs head {head.label}")
        for name, side in (("base", base), ("head", head)):
            say(f"  {name} {side.label}: {side.origin}")
        if "instructions" in args.clock:
            _require_counting()
        if "time" in args.clock:
            result = run_ab(
                base,
                head,
                settings,
                threshold=args.threshold,
                remeasure=not args.no_remeasure,
                extend=not args.no_extend,
                log=log,
            )
        else:
            result = AbResult(base.label, head.label, args.threshold, [])
        if "instructions" in args.clock:
            started = time.monotonic()
            result.counts_ = compare_counts(base, head, settings, args.count_threshold, log)
            result.count_threshold = args.count_threshold
            result.seconds += time.monotonic() - started
    except AbError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(result.text())
    _write(args.json, json.dumps(result.as_dict(), indent=1) + "\n")
    _write(args.markdown, result.markdown())
    if args.reports is None:
        from mlperf.inifile import configured_dir

        args.reports = configured_dir("reports")
    if args.reports:
        from mlperf.report.ab import write_latest_ab

        write_latest_ab(args.reports, result.as_dict(samples=False), result.markdown())
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:  # GitHub Actions shows this file on the run's page
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(result.markdown() + "\n")
    if result.regressions:
        return 1
    compared = any(b.decision for b in result.benchmarks) or any(
        c.head is not None and c.base is not None for c in result.counts_
    )
    if not compared:
        print(
            "mlperf ab: nothing was compared (no benchmark ran in both revisions)", file=sys.stderr
        )
        return 2
    return 0


def _require_counting() -> None:
    import importlib.util

    from mlperf.instructions import ValgrindMissing, require_valgrind

    try:
        require_valgrind()
    except ValgrindMissing as exc:
        raise AbError(f"mlperf ab: {exc}") from None
    if importlib.util.find_spec("pytest_codspeed") is None:
        raise AbError(
            "mlperf ab: --clock instructions issues callgrind's client requests through "
            'pytest-codspeed\'s prebuilt hooks: pip install "pytest-mlperf[instructions]"'
        )


def say(msg: str) -> None:
    """A progress line on stderr (stdout carries the result)."""
    print(msg, file=sys.stderr, flush=True)


def _write(path: str | None, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
    elif path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")

"""Same-run A/B of two revisions: ``mlperf ab BASE [HEAD]``, the merge gate.

Stored baselines cannot gate a 5 % change on a shared machine whose medians drift
2x between processes, so the gate measures both revisions in the same job: git
worktrees (one environment when the dependencies match), the same benchmark ids,
single rounds interleaved A/B/B/A between the two workers of a process pair (same
CPU, same hash seed, same memory layout), several fresh pairs (one per CPU at a
time, side by side), process CPU time (wall time for
``@pytest.mark.mlperf(metric="wall")``), peak memory.  The median ratio is taken
over time-adjacent round pairs.  A benchmark is a
REGRESSION only when a one-sided Mann-Whitney test gives p < 0.01 *and* the
bootstrap 95 % interval of the median ratio lies wholly above ``1 + threshold``,
and only if a re-measurement with twice the rounds in fresh processes says so
again (or, when the re-measurement alone is too noisy to tell, both measurements
together do).  ``suites/gate`` measures how often this verdict is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mlperf.ab.result import AbResult, BenchmarkVerdict, memory_verdict
from mlperf.ab.runner import Measurement, Plan, Settings, measure
from mlperf.ab.trees import AbError, Side, prepare_sides, repo_root
from mlperf.ab.verdict import Decision, decide, paired_block_bootstrap

__all__ = [
    "AbError", "AbResult", "BenchmarkVerdict", "Decision", "Measurement", "Settings", "Side",
    "add_arguments", "decide", "judge", "paired_block_bootstrap", "run", "run_ab",
]  # fmt: skip


def judge(m: Measurement, threshold: float) -> BenchmarkVerdict:
    """Verdict of one measurement (no re-measurement)."""
    verdict = BenchmarkVerdict(
        m, memory=memory_verdict(m.base_memory, m.head_memory, m.max_memory_regression)
    )
    if not m.error and not m.skipped and m.base and m.head:
        verdict.decision = decide(m.base, m.head, threshold=threshold)
    return verdict


def _may_have_moved(d: Decision | None, threshold: float) -> bool:
    """Inconclusive, with the estimate itself beyond half the threshold on either side.

    An inconclusive benchmark whose estimate sits near 1 is far likelier unchanged than
    moved; measuring it again would cost as much as the first look and rarely change
    the verdict (on identical code, 15 of 88 inconclusive first looks in the gate
    evaluation had an estimate beyond 1.5 %; at +5 %, 41 of 44).
    """
    half = threshold / 2
    return (
        d is not None
        and d.verdict == "inconclusive"
        and (d.ratio > 1 + half or d.ratio < 1 / (1 + half))
    )


def _combine(first: Measurement, more: Measurement) -> Measurement:
    """One measurement holding the process pairs of both (errors of either win)."""
    return Measurement(
        first.id, first.metric, first.max_regression, first.max_memory_regression, first.iterations,
        base=first.base + more.base, head=first.head + more.head,
        base_memory=first.base_memory + more.base_memory, head_memory=first.head_memory + more.head_memory,
        error=first.error or more.error, skipped=first.skipped or more.skipped,
        same_layout=bool(first.same_layout and more.same_layout), extended=True,
    )  # fmt: skip


def run_ab(
    base: Side,
    head: Side,
    settings: Settings | None = None,
    *,
    threshold: float = 0.03,
    remeasure: bool = True,
    extend: bool = True,
    log: Callable[[str], None] | None = None,
) -> AbResult:
    """Measure *base* against *head* and decide every benchmark both collect.

    Parameters
    ----------
    base, head:
        The two sides (checkout, interpreter, extra environment).
    settings:
        Rounds, process pairs, paths and ``-k`` filter; defaults as ``mlperf ab``.
    threshold:
        Relative change below which a difference does not matter (0.03 = 3 %).
    remeasure:
        Re-measure each REGRESSION or IMPROVEMENT with twice the rounds in fresh
        processes; the second verdict is the one that stands, and when the second
        measurement alone is inconclusive, the verdict on both together.
    extend:
        When a benchmark is inconclusive and its estimate lies beyond half the
        threshold (it may have moved), measure it once more with twice the
        rounds in fresh processes and decide on all its samples together.
    log:
        Called with progress lines (default: silent).

    Returns
    -------
    AbResult
        Verdicts, the ids only one side has, collection errors and the time taken.
    """
    settings = settings or Settings()
    if not threshold >= 0:
        raise AbError(f"mlperf ab: --threshold must be >= 0 (0.03 means 3 %); got {threshold!r}")
    say = log or (lambda _msg: None)
    started = time.monotonic()
    seen: dict[str, list[str]] = {}

    def collected(a: list[str], b: list[str], errors_a: list[str], errors_b: list[str]) -> None:
        seen.update(only_base=[i for i in a if i not in b], only_head=[i for i in b if i not in a],
                    errors=[f"base: {e}" for e in errors_a] + [f"head: {e}" for e in errors_b])  # fmt: skip
        say(f"mlperf ab: {len([i for i in a if i in b])} benchmarks in both revisions")

    plans: dict[str, Plan] = {}  # re-measurements scale the first measurement's plan
    first = measure(base, head, settings, on_collect=collected, tag="m", plans=plans)
    verdicts = [judge(m, threshold) for m in first]
    undecided = [v for v in verdicts if _may_have_moved(v.decision, threshold)]
    if extend and undecided:
        say(
            f"mlperf ab: {len(undecided)} inconclusive benchmark(s): measuring them again with twice the rounds"
        )
        more = {
            m.id: m
            for m in measure(
                base, head, settings, [v.id for v in undecided], scale=2.0, tag="e", plans=plans
            )
        }
        for v in undecided:
            if v.id in more:
                both = _combine(v.measurement, more[v.id])
                verdicts[verdicts.index(v)] = judge(both, threshold)
    flagged = [
        v for v in verdicts if v.decision and v.decision.verdict in ("REGRESSION", "IMPROVEMENT")
    ]
    if remeasure and flagged:
        say(f"mlperf ab: re-measuring {len(flagged)} flagged benchmark(s) with twice the rounds")
        again = {
            m.id: m
            for m in measure(
                base, head, settings, [v.id for v in flagged], scale=2.0, tag="r", plans=plans
            )
        }
        for v in flagged:
            if v.id in again:
                redo = judge(again[v.id], threshold)
                if redo.decision and redo.decision.verdict == "inconclusive":
                    # Too noisy to confirm or clear on its own: decide on all the samples.
                    redo = judge(_combine(v.measurement, again[v.id]), threshold)
                redo.first, redo.first_measurement = v.decision, v.measurement
                verdicts[verdicts.index(v)] = redo
    by_id = {m.id: m for m in first}
    for v in verdicts:
        v.initial = by_id.get(v.id)
    return AbResult(
        base=base.label, head=head.label, threshold=threshold, benchmarks=verdicts,
        only_base=seen.get("only_base", []), only_head=seen.get("only_head", []),
        collect_errors=seen.get("errors", []), seconds=time.monotonic() - started,
        settings={"pairs": settings.pairs, "lanes": settings.lanes, "rounds": settings.rounds, "max_time": settings.max_time,
                  "paths": settings.paths, "only": settings.only, "pin": settings.pin},
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlperf ab``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("base", metavar="BASE", help="base revision, e.g. origin/main or HEAD~1")
    parser.add_argument(
        "head",
        metavar="HEAD",
        nargs="?",
        default=None,
        help="head revision (default: the working tree, uncommitted changes included)",
    )
    parser.add_argument(
        "--only", metavar="EXPR", default=None, help="pytest -k expression selecting benchmarks"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        metavar="N",
        help="measured rounds per side and benchmark (default: as many as fit in --max-time, "
        "at least 20)",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=Settings.max_time,
        metavar="SECONDS",
        help="measuring time per side and benchmark, in the benchmark's clock (CPU seconds unless "
        f"metric='wall'), when --rounds is not given (default: {Settings.max_time:g})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.03,
        metavar="FRACTION",
        help="smallest change that counts, as a fraction (default: 0.03 = 3 %%)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=Settings.pairs,
        metavar="N",
        help=f"pairs of fresh worker processes the rounds are spread over (default: {Settings.pairs})",
    )
    parser.add_argument(
        "--lanes",
        type=int,
        default=None,
        metavar="N",
        help="process pairs measured at once, each on its own CPU (default: one per CPU)",
    )
    parser.add_argument(
        "--path",
        dest="paths",
        action="append",
        default=None,
        metavar="PATH",
        help="suite directory or test file to collect from (repeatable; default: suites)",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="write the full result, samples included ('-': stdout)",
    )
    parser.add_argument(
        "--markdown", metavar="PATH", default=None, help="write a PR-comment table ('-': stdout)"
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
    parser.add_argument("--extras", default="all",
                        help="extras to install when a revision needs its own venv (default: all)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``mlperf ab``: 1 on a REGRESSION, 2 when the comparison could not be made, else 0."""
    for name in ("rounds", "pairs", "lanes"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "rounds" else 1):
            print(
                f"mlperf ab: --{name} must be at least {2 if name == 'rounds' else 1}; got {value!r}",
                file=sys.stderr,
            )
            return 2
    try:
        repo = repo_root()
        cache = repo / ".cache" / "mlperf" / "ab"
        base, head = prepare_sides(repo, args.base, args.head, cache, args.extras)
        paths = args.paths or ["suites"]
        settings = Settings(paths=paths, only=args.only, rounds=args.rounds, max_time=args.max_time,
                            pairs=args.pairs, lanes=args.lanes, pin=not args.no_pin, work_dir=cache,
                            options={"mlperf_report": str(cache / "scratch-reports"), "mlperf_no_gate": True})  # fmt: skip
        for side in (base, head):
            missing = [p for p in paths if not (side.root / p).exists()]
            if missing:
                raise AbError(f"mlperf ab: {side.label} has no {', '.join(map(repr, missing))}; "
                              "pass --path with suites that exist in both revisions")  # fmt: skip
        print(f"mlperf ab: base {base.label} vs head {head.label}", file=sys.stderr, flush=True)
        result = run_ab(base, head, settings, threshold=args.threshold, remeasure=not args.no_remeasure, extend=not args.no_extend,
                        log=lambda msg: print(msg, file=sys.stderr, flush=True))  # fmt: skip
    except AbError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(result.text())
    _write(args.json, json.dumps(result.as_dict(), indent=1) + "\n")
    _write(args.markdown, result.markdown())
    if result.regressions:
        return 1
    if not any(b.decision for b in result.benchmarks):
        print(
            "mlperf ab: nothing was compared (no benchmark ran in both revisions)", file=sys.stderr
        )
        return 2
    return 0


def _write(path: str | None, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
    elif path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")

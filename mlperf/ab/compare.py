"""Orchestration of ``mlperf ab``: measure, look again where needed, re-measure, decide."""

from __future__ import annotations

import time
from collections.abc import Callable

from mlperf.ab.result import AbResult, BenchmarkVerdict, memory_verdict
from mlperf.ab.runner import measure
from mlperf.ab.types import AbError, Measurement, Plan, Settings, Side
from mlperf.ab.verdict import Decision, decide
from mlperf.records import DEFAULT_AB_THRESHOLD as AB_THRESHOLD

__all__ = ["judge", "run_ab"]


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
        first.id,
        first.metric,
        first.max_memory_regression,
        first.iterations,
        base=first.base + more.base,
        head=first.head + more.head,
        base_memory=first.base_memory + more.base_memory,
        head_memory=first.head_memory + more.head_memory,
        error=first.error or more.error,
        skipped=first.skipped or more.skipped,
        same_layout=bool(first.same_layout and more.same_layout),
        extended=True,
    )


class _Progress:
    """One line per benchmark as it is decided, with an estimate of the time left."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say, self.total, self.done = say, 0, 0
        self.started = time.monotonic()

    def step(self, bid: str, text: str) -> None:
        self.say(f"  {bid}: {text}")

    def decided(self, bid: str, text: str) -> None:
        self.done += 1
        left = self.total - self.done
        per = (time.monotonic() - self.started) / self.done
        eta = f"  ETA {per * left:.0f} s" if left > 0 else ""
        self.say(f"[{self.done}/{self.total}] {bid} {text}{eta}")


def run_ab(
    base: Side,
    head: Side,
    settings: Settings | None = None,
    *,
    threshold: float = AB_THRESHOLD,
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
    progress = _Progress(say)

    def collected(a: list[str], b: list[str], errors_a: list[str], errors_b: list[str]) -> None:
        seen.update(
            only_base=[i for i in a if i not in b],
            only_head=[i for i in b if i not in a],
            errors=[f"base: {e}" for e in errors_a] + [f"head: {e}" for e in errors_b],
        )
        progress.total = len([i for i in a if i in b])
        say(f"mlperf ab: {progress.total} benchmarks in both revisions")

    def first_look(m: Measurement, complete: bool) -> None:
        if not complete:
            progress.step(m.id, f"measured in {len(m.base)} of {settings.pairs} process pairs")
            return
        v = judge(m, threshold)
        flagged = v.decision is not None and v.decision.verdict in ("REGRESSION", "IMPROVEMENT")
        later = (
            " (re-measured at the end)"
            if remeasure and flagged
            else " (measured again at the end)"
            if extend and _may_have_moved(v.decision, threshold)
            else ""
        )
        progress.decided(m.id, v.brief() + later)

    plans: dict[str, Plan] = {}  # re-measurements scale the first measurement's plan
    first = measure(
        base, head, settings, on_collect=collected, tag="m", plans=plans, on_measured=first_look
    )
    verdicts = [judge(m, threshold) for m in first]

    def look_again(which: list[BenchmarkVerdict], tag: str, why: str) -> dict[str, Measurement]:
        """Measure *which* once more, with twice the rounds, in fresh process pairs."""
        say(f"mlperf ab: {len(which)} {why}: measuring again with twice the rounds")
        ids = [v.id for v in which]
        return {
            m.id: m for m in measure(base, head, settings, ids, scale=2.0, tag=tag, plans=plans)
        }

    undecided = [v for v in verdicts if _may_have_moved(v.decision, threshold)]
    if extend and undecided:
        more = look_again(undecided, "e", "inconclusive benchmark(s) may have moved")
        for v in undecided:
            if v.id in more:
                both = judge(_combine(v.measurement, more[v.id]), threshold)
                verdicts[verdicts.index(v)] = both
                say(f"  again: {v.id} {both.brief()} (on both looks' samples)")
    flagged = [
        v for v in verdicts if v.decision and v.decision.verdict in ("REGRESSION", "IMPROVEMENT")
    ]
    if remeasure and flagged:
        again = look_again(flagged, "r", "flagged benchmark(s) to confirm")
        for v in flagged:
            if v.id in again:
                redo = judge(again[v.id], threshold)
                if redo.decision and redo.decision.verdict == "inconclusive":
                    # Too noisy to confirm or clear on its own: decide on all the samples.
                    redo = judge(_combine(v.measurement, again[v.id]), threshold)
                redo.first, redo.first_measurement = v.decision, v.measurement
                verdicts[verdicts.index(v)] = redo
                say(f"  re-measured: {v.id} {redo.brief()}")
    if any(v.measurement.error for v in verdicts):
        say(f"mlperf ab: the workers' logs are in {settings.work_dir / 'logs'}")
    by_id = {m.id: m for m in first}
    for v in verdicts:
        v.initial = by_id.get(v.id)
    return AbResult(
        base=base.label,
        head=head.label,
        threshold=threshold,
        benchmarks=verdicts,
        only_base=seen.get("only_base", []),
        only_head=seen.get("only_head", []),
        collect_errors=seen.get("errors", []),
        seconds=time.monotonic() - started,
        settings={
            "pairs": settings.pairs,
            "lanes": settings.lanes,
            "rounds": settings.rounds,
            "max_time": settings.max_time,
            "paths": settings.paths,
            "only": settings.only,
            "pin": settings.pin,
            "code": {"base": base.origin, "head": head.origin},
        },
    )

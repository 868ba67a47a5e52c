"""Recording rounds: everything that touches pytest-benchmark's internals, in one place.

mlperf adds to pytest-benchmark's rounds a second clock (process CPU time) and an
extra, untimed round that measures peak memory.  pytest-benchmark has no public
hook for either, so this module reaches into its fixture and session objects:

* ``BenchmarkFixture._timer``: the clock, called exactly twice per round (start,
  end); replaced by :class:`DualClock`, which also reads ``time.process_time``;
* ``BenchmarkFixture._raw`` / ``._raw_pedantic``: what ``benchmark(...)`` and
  ``benchmark.pedantic(...)`` run; wrapped to add the memory round;
* ``BenchmarkFixture._add_stats``: hands the rounds to pytest-benchmark's own
  table; silenced while a benchmark is re-measured, so its table keeps the first
  measurement;
* ``BenchmarkFixture.stats.stats.data`` and ``.stats.iterations``: the rounds it
  kept (per-call seconds) and the iterations per round;
* ``config._benchmarksession.disabled`` / ``.skip`` and, from 5.3 on,
  ``.xdist_warning`` (benchmarks turned off because pytest-xdist is active).

Checked against pytest-benchmark 5.1.0, 5.2.0, 5.2.3 and 5.3.1 (their
``fixture.py``, ``session.py`` and ``stats.py``, 2026-12-05): all of them have
these attributes and call the timer twice per round.  5.1 has no ``teardown``
argument to ``pedantic``, so it is passed on only when given.  Only 5.3.1 runs
under pytest 9.2 (the older ones read ``item._nodeid``, which pytest 9.2 no longer
sets).  ``tests/test_recording.py`` fails, naming the attribute, when one of these
moves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlperf.records import BenchmarkRecord, ClockSummary, PeakMemoryRecord, Settings

__all__ = [
    "FIXTURE_INTERNALS",
    "RECORDER_KEY",
    "REMEASURE_KEY",
    "SESSION_INTERNALS",
    "DualClock",
    "Recorder",
    "benchmarks_enabled",
    "correctness_mode",
    "measured_fixture",
    "missing_internals",
    "start",
]

#: attributes of pytest-benchmark's ``benchmark`` fixture that mlperf reads or replaces
FIXTURE_INTERNALS = ("_timer", "_raw", "_raw_pedantic", "_add_stats", "stats", "enabled")
#: attributes of ``config._benchmarksession`` that mlperf reads
SESSION_INTERNALS = ("disabled", "skip")


def missing_internals(fixture: object, config: pytest.Config) -> list[str]:
    """The pytest-benchmark internals this module relies on that are not where it expects."""
    missing = [f"BenchmarkFixture.{a}" for a in FIXTURE_INTERNALS if not hasattr(fixture, a)]
    session = getattr(config, "_benchmarksession", None)
    if session is None:
        return [*missing, "config._benchmarksession"]
    missing += [f"BenchmarkSession.{a}" for a in SESSION_INTERNALS if not hasattr(session, a)]
    stats = getattr(fixture, "stats", None)
    if stats is not None:  # filled once the benchmark ran
        if not hasattr(stats, "iterations"):
            missing.append("Metadata.iterations (fixture.stats.iterations)")
        if not hasattr(getattr(stats, "stats", None), "data"):
            missing.append("Stats.data (fixture.stats.stats.data)")
    return missing


def benchmarks_enabled(config: pytest.Config) -> bool:
    """Whether pytest-benchmark measures in this session (not disabled, not skipped)."""
    bs = getattr(config, "_benchmarksession", None)
    return bs is not None and not bs.disabled and not bs.skip


def correctness_mode(config: pytest.Config) -> str | None:
    """Why benchmark bodies run once, untimed (``--benchmark-disable`` or pytest-xdist), or None."""
    bs = getattr(config, "_benchmarksession", None)
    if bs is None or not bs.disabled:
        return None
    return (
        "pytest-xdist is active" if getattr(bs, "xdist_warning", False) else "--benchmark-disable"
    )


class DualClock:
    """pytest-benchmark timer that returns wall time and also reads process CPU time.

    pytest-benchmark calls its timer exactly twice per round (start, end), so the
    last ``2 * rounds`` readings pair up with the rounds it keeps.  All instances
    compare equal so pytest-benchmark computes the timer precision only once.
    """

    __name__ = "perf_counter+process_time"

    def __init__(self) -> None:
        self.readings: list[tuple[float, float]] = []

    def __call__(self) -> float:
        wall, cpu = time.perf_counter(), time.process_time()
        self.readings.append((wall, cpu))
        return wall

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DualClock)

    def __hash__(self) -> int:
        return hash(DualClock)

    def rounds(self, n: int, iterations: int) -> tuple[list[float], list[float]]:
        pairs = self.readings[-2 * n :] if n else []
        wall = [(pairs[i + 1][0] - pairs[i][0]) / iterations for i in range(0, len(pairs), 2)]
        cpu = [(pairs[i + 1][1] - pairs[i][1]) / iterations for i in range(0, len(pairs), 2)]
        return wall, cpu


@dataclass
class Sink:
    """What one benchmark's instrumented fixture collected."""

    clock: DualClock = field(default_factory=DualClock)
    memory: PeakMemoryRecord | None = None


def measured_fixture(item: pytest.Item) -> Any:
    """The item's pytest-benchmark fixture when it will measure, else None."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is None or not hasattr(fixture, "_raw_pedantic") or not fixture.enabled:
        return None
    return fixture


def _memory_round(fn: Callable[[], Any]) -> PeakMemoryRecord:
    from mlperf.memory import peak_memory

    with peak_memory() as mem:
        fn()
    return {"peak": mem.peak, "python": mem.python, "rss": mem.rss}


def start(item: pytest.Item, fixture: Any, settings: Settings) -> Sink:
    """Give *item*'s fixture the dual clock and an extra, untimed memory round.

    While *item* is being re-measured (:data:`REMEASURE_KEY` in its stash),
    pytest-benchmark's own table keeps the first measurement.
    """
    sink = Sink()
    fixture._timer = sink.clock
    raw, raw_pedantic = fixture._raw, fixture._raw_pedantic

    def _raw(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = raw(function, *args, **kwargs)
        if fixture.enabled and settings["memory"]:
            sink.memory = _memory_round(lambda: function(*args, **kwargs))
        return result

    def _raw_pedantic(
        target: Callable[..., Any],
        args: Any = (),
        kwargs: Any = None,
        setup: Any = None,
        teardown: Any = None,
        **rest: Any,
    ) -> Any:
        if teardown is not None:  # pytest-benchmark 5.1 has no teardown argument
            rest["teardown"] = teardown
        result = raw_pedantic(target, args=args, kwargs=kwargs, setup=setup, **rest)
        if fixture.enabled and settings["memory"]:
            a, kw = args, kwargs or {}
            if setup is not None:
                made = setup()
                if made:
                    a, kw = made
            sink.memory = _memory_round(lambda: target(*a, **kw))
            if teardown is not None:
                teardown(*a, **kw)
        return result

    fixture._raw, fixture._raw_pedantic = _raw, _raw_pedantic
    if REMEASURE_KEY in item.stash:
        fixture._add_stats = lambda _stats: None
    return sink


def _clock_summary(samples: list[float], *, clip: bool = False) -> ClockSummary:
    """Summary and samples of one clock; *clip*: summarise negative readings as 0."""
    from mlperf.stats import summarize

    s = summarize([max(x, 0.0) for x in samples] if clip else samples)
    return {
        "n": s.n,
        "median": s.median,
        "iqr": s.iqr,
        "min": s.min,
        "mean": s.mean,
        "samples": samples,
    }


class Recorder:
    """Collects one record per benchmark that really ran (not disabled, not failed)."""

    def __init__(self) -> None:
        self.records: list[BenchmarkRecord] = []

    def add(self, item: pytest.Item, fixture: Any, settings: Settings, sink: Sink) -> None:
        record = self.build(item, fixture, settings, sink)
        if record is None:
            return
        first = item.stash.get(REMEASURE_KEY, None)
        if first is None:
            self.records.append(record)
        else:  # a re-measurement of a flagged benchmark: kept with the first measurement
            first.setdefault("remeasured", []).append(record)

    @staticmethod
    def build(
        item: pytest.Item, fixture: Any, settings: Settings, sink: Sink
    ) -> BenchmarkRecord | None:
        from mlperf.baselines import suite_of

        stats = getattr(fixture, "stats", None)
        data = list(getattr(getattr(stats, "stats", None), "data", []) or [])
        if stats is None or not data:
            return None
        wall, cpu = sink.clock.rounds(len(data), stats.iterations)
        if len(wall) != len(data):
            wall, cpu = (
                data,
                [],
            )  # pytest-benchmark changed its timer protocol: its wall samples only
        record: BenchmarkRecord = {
            "id": item.nodeid,
            "suite": suite_of(item.nodeid),
            "metric": settings["metric"],
            "wall": _clock_summary(wall),
            "memory": sink.memory,
            "extra_info": dict(fixture.extra_info),
            "max_regression": settings["max_regression"],
            "max_memory_regression": settings["max_memory_regression"],
        }
        if cpu:
            record["cpu"] = _clock_summary(cpu, clip=True)
        elif settings["metric"] == "cpu":
            record["metric"] = "wall"
        return record


#: the session's recorder (on the config)
RECORDER_KEY = pytest.StashKey[Recorder]()
#: on an item being re-measured: the record of its first measurement
REMEASURE_KEY = pytest.StashKey["BenchmarkRecord"]()

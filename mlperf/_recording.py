"""Recording rounds: everything that touches pytest-benchmark's internals, in one place.

mlperf adds to pytest-benchmark's rounds a second clock (process CPU time) and an
extra, untimed call that measures peak memory, **without changing what
pytest-benchmark measures**: its timer (``--benchmark-timer``, or a benchmark
marker's ``timer``) is never replaced or wrapped, nothing runs inside its timed
interval, and its statistics are exactly what they are without mlperf.

The CPU clock is read *between* rounds.  Each round's process CPU time is taken
as pytest-benchmark's own duration times the process's CPU rate over the span
from the previous reading to this one (``duration * dCPU / dwall``): when the
process ran undisturbed the rate is 1 and the CPU time is the duration itself;
when it was descheduled for part of the span, the rate says by how much; for
code that runs several threads it is their sum, as process CPU time is.  The span
holds pytest-benchmark's bookkeeping as well as the round, which changes the rate
only where the machine preempted the bookkeeping rather than the round.
Readings are taken at ``Metadata.update`` (once per kept round, never per
calibration or warm-up call), after a pedantic ``setup`` or ``teardown`` returns,
and when the stats object is made; the CPU samples go into an ``array('d')`` (8
bytes a round), the wall samples are pytest-benchmark's own, and a record keeps
at most :data:`~mlperf.baselines.MAX_SAMPLES` of each next to a summary of all.

The internals reached into (``tests/test_recording.py`` fails, naming the
attribute, when one of them moves):

* ``BenchmarkFixture._make_stats``: makes the ``Metadata`` whose ``update`` gets each
  kept round's duration; wrapped to wrap that ``update``;
* ``BenchmarkFixture._raw`` / ``._raw_pedantic``: what ``benchmark(...)`` and
  ``benchmark.pedantic(...)`` run; wrapped to add the memory call and to read the
  clock after a pedantic ``setup``/``teardown``;
* ``BenchmarkFixture._add_stats``: hands the rounds to pytest-benchmark's own
  table; silenced while a benchmark is re-measured, so its table keeps the first
  measurement;
* ``Metadata.update``, ``Metadata.iterations``, ``Stats.data`` (per-call seconds);
* ``config._benchmarksession.disabled`` / ``.skip`` and, from 5.3 on,
  ``.xdist_warning``.

Checked against pytest-benchmark 5.1.0, 5.2.0, 5.2.3 and 5.3.1 (their
``fixture.py``, ``session.py`` and ``stats.py``, 2026-12-05).  5.1 has no
``teardown`` argument to ``pedantic``, so it is passed on only when given.
"""

from __future__ import annotations

import time
from array import array
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
    "Recorder",
    "RoundClock",
    "benchmarks_enabled",
    "correctness_mode",
    "measured_fixture",
    "missing_internals",
    "start",
    "whole_call",
    "whole_call_fixture",
]

#: attributes of pytest-benchmark's ``benchmark`` fixture that mlperf reads or replaces
FIXTURE_INTERNALS = ("_make_stats", "_raw", "_raw_pedantic", "_add_stats", "stats", "enabled")
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
        for name in ("iterations", "update"):
            if not hasattr(stats, name):
                missing.append(f"Metadata.{name} (fixture.stats.{name})")
        if not hasattr(getattr(stats, "stats", None), "data"):
            missing.append("Stats.data (fixture.stats.stats.data)")
    return missing


def benchmarks_enabled(config: pytest.Config) -> bool:
    """Whether pytest-benchmark measures in this session (not disabled, not skipped).

    pytest-benchmark's own decision: ``--benchmark-disable`` unless
    ``--benchmark-enable``, and off under pytest-xdist.
    """
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


class RoundClock:
    """Process CPU time of each kept round, read between rounds (see the module's notes)."""

    def __init__(self) -> None:
        self.cpu = array("d")  # seconds per call, one per kept round
        self._cpu0 = self._wall0 = 0.0
        self._marked = False

    def mark(self) -> None:
        """A reading that starts the next round's span."""
        self._cpu0, self._wall0, self._marked = time.process_time(), time.perf_counter(), True

    def round(self, duration: float, iterations: int) -> None:
        """A kept round of *duration* seconds (pytest-benchmark's) and *iterations* calls."""
        cpu1, wall1 = time.process_time(), time.perf_counter()
        if self._marked and wall1 > self._wall0:
            rate = (cpu1 - self._cpu0) / (wall1 - self._wall0)
            self.cpu.append(max(duration, 0.0) * rate / iterations)
        self._cpu0, self._wall0, self._marked = cpu1, wall1, True


@dataclass
class Sink:
    """What one benchmark's instrumented fixture collected."""

    clock: RoundClock = field(default_factory=RoundClock)
    memory: PeakMemoryRecord | None = None


def whole_call(item: pytest.Item) -> bool:
    """A benchmark in pytest-codspeed's style: marked ``benchmark``, without the fixture.

    Its whole test function is the measured call.
    """
    return (
        isinstance(item, pytest.Function)
        and item.get_closest_marker("benchmark") is not None
        and "benchmark" not in item.fixturenames
    )


def whole_call_fixture(item: pytest.Item) -> Any:
    """Measure a :func:`whole_call` benchmark through pytest-benchmark's own fixture.

    The fixture (with the marker's settings, as pytest-benchmark gives them) is
    requested for the item and its test function is run through it, so the rounds,
    pytest-benchmark's table and JSON, and mlperf's record are those of a benchmark
    written as ``benchmark(test_function)``.
    """
    assert isinstance(item, pytest.Function)
    fixture = item._request.getfixturevalue("benchmark")
    function = item.obj

    def measured(**kwargs: Any) -> Any:
        return fixture(function, **kwargs)

    item.obj = measured
    item.addfinalizer(lambda: setattr(item, "obj", function))  # a re-run starts afresh
    item.funcargs["benchmark"] = fixture  # where pytest-benchmark's report hook looks for it
    return fixture


def measured_fixture(item: pytest.Item) -> Any:
    """The item's pytest-benchmark fixture when it will measure, else None."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is None or not hasattr(fixture, "_raw_pedantic") or not fixture.enabled:
        return None
    return fixture


def _memory_round(fn: Callable[[], Any]) -> PeakMemoryRecord:
    from mlperf.memory.peak import peak_memory

    # the rounds' recent garbage only: with a full collection per benchmark, cattrs' own
    # 64-benchmark suite (300 MiB heap) took 1.54x its time without mlperf; with this, 1.13x
    # (Intel Xeon VM, 2026-12-06, runs interleaved, 2 each)
    with peak_memory(collect=1) as mem:
        fn()
    return {"peak": mem.peak, "python": mem.python, "rss": mem.rss}


def start(item: pytest.Item, fixture: Any, settings: Settings) -> Sink:
    """Read the CPU clock between *item*'s rounds and add an untimed memory call after them.

    While *item* is being re-measured (:data:`REMEASURE_KEY` in its stash),
    pytest-benchmark's own table keeps the first measurement.
    """
    sink = Sink()
    clock = sink.clock
    raw, raw_pedantic, make_stats = fixture._raw, fixture._raw_pedantic, fixture._make_stats

    def _make_stats(iterations: int) -> Any:
        stats = make_stats(iterations)
        update = stats.update

        def counted(duration: float) -> Any:
            clock.round(duration, stats.iterations)  # first: the closest reading to the round
            return update(duration)

        stats.update = counted
        clock.mark()
        return stats

    def _raw(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = raw(function, *args, **kwargs)
        if fixture.enabled and settings["memory"]:
            sink.memory = _memory_round(lambda: function(*args, **kwargs))
        return result

    def _marking(step: Callable[..., Any] | None) -> Callable[..., Any] | None:
        if step is None:
            return None

        def marked(*a: Any, **kw: Any) -> Any:
            out = step(*a, **kw)
            clock.mark()  # the round's span starts after the untimed set-up or tear-down
            return out

        return marked

    def _raw_pedantic(
        target: Callable[..., Any],
        args: Any = (),
        kwargs: Any = None,
        setup: Any = None,
        teardown: Any = None,
        **rest: Any,
    ) -> Any:
        if teardown is not None:  # pytest-benchmark 5.1 has no teardown argument
            rest["teardown"] = _marking(teardown)
        result = raw_pedantic(target, args=args, kwargs=kwargs, setup=_marking(setup), **rest)
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

    fixture._raw, fixture._raw_pedantic, fixture._make_stats = _raw, _raw_pedantic, _make_stats
    if REMEASURE_KEY in item.stash:
        fixture._add_stats = lambda _stats: None
    return sink


def _clock_summary(samples: list[float] | array[float]) -> ClockSummary:
    """Summary of every round, and at most ``MAX_SAMPLES`` of them, evenly spaced."""
    from mlperf.baselines import thin
    from mlperf.stats import summarize

    s = summarize(samples)
    return {
        "n": s.n,
        "median": s.median,
        "iqr": s.iqr,
        "min": s.min,
        "mean": s.mean,
        "samples": thin(list(samples)),
    }


class Recorder:
    """Collects one record per benchmark that really ran (not disabled, not failed).

    It also keeps each benchmark's ``extra_info`` dict, the one pytest-benchmark
    writes into its own JSON, so that the gate can add mlperf's numbers to it.
    """

    def __init__(self) -> None:
        self.records: list[BenchmarkRecord] = []
        self.extra_info: dict[str, dict[str, Any]] = {}

    def add(self, item: pytest.Item, fixture: Any, settings: Settings, sink: Sink) -> None:
        record = self.build(item, fixture, settings, sink)
        if record is None:
            return
        first = item.stash.get(REMEASURE_KEY, None)
        if first is None:
            self.records.append(record)
            self.extra_info[record["id"]] = fixture.extra_info
        else:  # a re-measurement of a flagged benchmark: kept with the first measurement
            first.setdefault("remeasured", []).append(record)

    @staticmethod
    def build(
        item: pytest.Item, fixture: Any, settings: Settings, sink: Sink
    ) -> BenchmarkRecord | None:
        from mlperf.baselines import suite_of

        stats = getattr(fixture, "stats", None)
        wall = list(getattr(getattr(stats, "stats", None), "data", []) or [])
        if stats is None or not wall:
            return None
        counted = settings["metric"] == "instructions"
        record: BenchmarkRecord = {
            "id": item.nodeid,
            "suite": suite_of(item.nodeid),
            "metric": "wall" if settings["metric"] == "wall" else "cpu",  # its time clock
            "wall": _clock_summary(wall),
            "memory": sink.memory,
            "extra_info": dict(fixture.extra_info),
            "max_regression": settings["max_regression"],
            "max_memory_regression": settings["max_memory_regression"],
        }
        if sink.clock.cpu:
            record["cpu"] = _clock_summary(sink.clock.cpu)
        elif record["metric"] == "cpu":  # no round could be read (pytest-benchmark changed)
            record["metric"] = "wall"
        if counted or item.config.getoption("mlperf_clock") == "instructions":
            record["clock"] = "instructions"  # counted after the session (mlperf.gate)
        return record


#: the session's recorder (on the config)
RECORDER_KEY = pytest.StashKey[Recorder]()
#: on an item being re-measured: the record of its first measurement
REMEASURE_KEY = pytest.StashKey["BenchmarkRecord"]()

"""The records mlperf writes and reads, as types, and the defaults of the gate settings.

A run record is ``reports/latest.json`` (and, without its samples and
re-measurements, one line of ``reports/history/<machine-id>.jsonl``); it holds one
:class:`BenchmarkRecord` per benchmark, each with its :class:`Verdict`.  A baseline
file (``baselines/<machine-id>/<suite>.json``) holds one :class:`BaselineEntry` per
benchmark.  Who builds and reads them:

* :mod:`mlperf._recording` builds a :class:`BenchmarkRecord` per measured benchmark;
* :mod:`mlperf.gate` gives each its :class:`Verdict` and assembles the :class:`RunRecord`;
* :mod:`mlperf.baselines` stores and loads :class:`BaselineEntry` items;
* :mod:`mlperf.report` (the run files and the HTML page) and :mod:`mlperf.cli` read both.

Only the standard library is imported here: the plugin imports this module.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "DEFAULT_AB_THRESHOLD",
    "DEFAULT_BASELINES_DIR",
    "DEFAULT_CACHE_DIR",
    "DEFAULT_COUNT_THRESHOLD",
    "DEFAULT_MAX_MEMORY_REGRESSION",
    "DEFAULT_MAX_REGRESSION",
    "DEFAULT_METRIC",
    "DEFAULT_REPORTS_DIR",
    "RUN_KIND",
    "RUN_SCHEMA_VERSION",
    "BaselineEntry",
    "BaselineFile",
    "BenchmarkRecord",
    "ClockSummary",
    "Environment",
    "FirstVerdict",
    "GateMetric",
    "GateOutcome",
    "InstructionCount",
    "MachineInfo",
    "Metric",
    "PeakMemoryRecord",
    "RunRecord",
    "Settings",
    "Verdict",
    "samples_of",
]

Metric = Literal["cpu", "wall"]
#: what ``@pytest.mark.mlperf(metric=...)`` may name: a time clock, or the instruction count
GateMetric = Literal["cpu", "wall", "instructions"]

#: the clock a benchmark is gated on unless ``@pytest.mark.mlperf(metric=...)`` says otherwise
DEFAULT_METRIC: Metric = "cpu"
#: a time REGRESSION needs the median ratio above ``1 + max_regression``
DEFAULT_MAX_REGRESSION = 0.25
#: a memory REGRESSION needs the peak above ``1 + max_memory_regression`` times the baseline's
DEFAULT_MAX_MEMORY_REGRESSION = 0.10
#: the instruction clock: a count that rises by more than this (0.5 %) is a REGRESSION.  Counts
#: of identical code spread at most 0.005 % between fresh processes (``make instructions-eval``,
#: 2026-12-06, Intel Xeon VM), so the threshold is a choice of how small a rise matters, not a
#: margin against noise; at 1 % a +1 % change sits on the line and is missed.
DEFAULT_COUNT_THRESHOLD = 0.005
#: ``mlperf ab``: the smallest relative change that counts (3 %); two processes measured side
#: by side resolve far less than a baseline recorded in another process on another day
DEFAULT_AB_THRESHOLD = 0.03

#: stored baselines, ``<dir>/<machine-id>/<suite>.json`` (``--mlperf-baselines``, the CLI)
DEFAULT_BASELINES_DIR = "baselines"
#: run files, history and the suites' tables and plots (``--mlperf-report``, ``mlperf report``)
DEFAULT_REPORTS_DIR = "reports"
#: generated data sets (``--mlperf-cache``); the engines' temporary files go to its ``tmp/``
DEFAULT_CACHE_DIR = ".cache/mlperf"

#: ``kind`` and ``schema_version`` of a run file (``reports/latest.json``, history lines)
RUN_KIND = "mlperf-run"
RUN_SCHEMA_VERSION = 1


class Settings(TypedDict):
    """The gate settings of one benchmark: ``@pytest.mark.mlperf(...)`` over the defaults."""

    metric: GateMetric
    max_regression: float
    max_memory_regression: float
    memory: bool


class ClockSummary(TypedDict):
    """One clock's rounds, in seconds per call (``samples`` left out of history lines)."""

    n: int
    median: float
    iqr: float
    min: float
    mean: float
    samples: NotRequired[list[float]]


class PeakMemoryRecord(TypedDict):
    """Extra peak memory of one untimed round, in bytes (see :class:`mlperf.memory.PeakMemory`)."""

    peak: int
    python: int
    rss: int | None


class FirstVerdict(TypedDict):
    """The time verdict of a re-measured benchmark's first measurement."""

    time: str
    ratio: float | None
    p: float | None


class Verdict(TypedDict):
    """A benchmark's verdict against its stored baseline.

    ``time``: one of :data:`mlperf.verdicts.VERDICTS` (``REGRESSION``, ``IMPROVEMENT``,
    ``same``, ``inconclusive``), ``new`` or ``no-baseline-for-this-machine``;
    ``memory``: ``REGRESSION``, ``lower``, ``same`` or one of the last two.  ``ci``
    is the 95 % interval of ``ratio``; ``text`` the change with that interval
    (``+4.1% (+2.0% .. +6.3%)``).  ``first`` is present when the time verdict comes
    from a re-measurement.
    """

    time: str
    memory: str
    ratio: float | None
    p: float | None
    text: str
    ci: NotRequired[tuple[float, float]]
    clock: NotRequired[Literal["instructions"]]  # the time verdict is the count's
    memory_ratio: NotRequired[float | None]
    first: NotRequired[FirstVerdict]


class InstructionCount(TypedDict):
    """One benchmark call counted under callgrind (:mod:`mlperf.instructions`)."""

    ir: int  # instructions executed
    cycles: int | None  # estimated from the simulated caches; None without them


class BenchmarkRecord(TypedDict):
    """One measured benchmark of a run.

    ``cpu`` is missing when pytest-benchmark's rounds could not be paired with the
    process-time readings (then ``metric`` is ``wall``); ``remeasured`` holds the
    re-measurements of a time REGRESSION (``--mlperf-confirm``), ``verdict`` is
    added at the end of the session.
    """

    id: str
    suite: str
    metric: Metric
    wall: ClockSummary
    memory: PeakMemoryRecord | None
    extra_info: dict[str, Any]
    max_regression: float
    max_memory_regression: float
    cpu: NotRequired[ClockSummary]
    clock: NotRequired[Literal["instructions"]]  # gated on its count, not on time
    instructions: NotRequired[InstructionCount]
    instructions_refused: NotRequired[str]
    remeasured: NotRequired[list[BenchmarkRecord]]
    verdict: NotRequired[Verdict]


class GateOutcome(TypedDict):
    """What the gate decided for a run, and the baseline files it wrote.

    ``missing``: with ``--mlperf-require-baseline``, the benchmarks that had no stored
    baseline for this machine (they fail the run); ``error``: why the baselines asked
    for could not be saved (it fails the run too).
    """

    failed: bool
    regressions: list[str]
    missing: NotRequired[list[str]]
    error: NotRequired[str]
    baselines: str
    saved: list[str]


class Environment(TypedDict):
    """Python's version and the versions of the packages that shape timings."""

    python: str
    packages: dict[str, str]


class RunRecord(TypedDict):
    """``reports/latest.json``: one session's benchmarks, verdicts and gate outcome."""

    schema_version: int
    kind: str
    machine_id: str
    commit: str | None
    created: str
    environment: Environment
    benchmarks: list[BenchmarkRecord]
    gate: GateOutcome


class BaselineEntry(TypedDict, total=False):
    """A benchmark in a baseline file (samples thinned to :data:`~mlperf.baselines.MAX_SAMPLES`)."""

    metric: Metric
    cpu: ClockSummary
    wall: ClockSummary
    memory: PeakMemoryRecord | None
    instructions: InstructionCount
    recorded: str


class MachineInfo(TypedDict):
    """What identifies a machine for timing purposes (no host names, no users)."""

    cpu: str
    logical_cores: int
    os: str
    arch: str
    python: str


class BaselineFile(TypedDict):
    """``baselines/<machine-id>/<suite>.json``."""

    schema_version: int
    kind: str
    machine_id: str
    machine: MachineInfo
    suite: str
    commit: str | None
    environment: Environment
    updated: str
    benchmarks: dict[str, BaselineEntry]


def samples_of(summary: ClockSummary | None) -> list[float]:
    """The round samples of a clock summary; empty when it has none (history lines, old files)."""
    return (summary.get("samples") if summary else None) or []

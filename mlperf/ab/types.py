"""The types ``mlperf ab`` passes around: its error, a side, the settings, a measurement, a plan."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mlperf.records import DEFAULT_CACHE_DIR

__all__ = ["AbError", "Measurement", "Plan", "Settings", "Side"]


class AbError(RuntimeError):
    """``mlperf ab`` cannot proceed; the message says why and what to do."""


@dataclass
class Side:
    """One side of an A/B comparison.

    Attributes
    ----------
    label:
        How the side is named in every message (``HEAD~1 (3522ac6)``).
    root:
        Where its pytest session runs: the checkout's counterpart of the directory
        ``mlperf ab`` was started in.
    python:
        The interpreter of its workers.
    env:
        Extra environment variables of its workers.
    options:
        pytest ``config.option`` values to set in its workers, when that revision has them.
    code_path:
        Directories put first on the workers' ``PYTHONPATH`` (before *root*) so that the
        project's own packages import from this revision: its source directories, or
        the directory its build was installed into.
    own:
        The project's own top-level import names (``pkg``, or ``ns.pkg`` inside a
        namespace package) that every worker checks after collection and after each
        benchmark: each must come from *allowed*.
    allowed:
        Directories the side's own modules may come from (its checkout, its build).
    compiled:
        When not empty, the only directories its compiled extension modules may come
        from (its build: the user's checkout may hold extensions built from another state).
    origin:
        One line saying where the side's code comes from, for the header.
    """

    label: str
    root: Path
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    code_path: list[Path] = field(default_factory=list)
    own: list[str] = field(default_factory=list)
    allowed: list[Path] = field(default_factory=list)
    compiled: list[Path] = field(default_factory=list)
    origin: str = ""


@dataclass
class Settings:
    """How much to measure and where; see ``mlperf ab --help`` for the user-facing meaning."""

    paths: list[str] = field(default_factory=lambda: ["."])
    only: str | None = None
    rounds: int | None = None  # per side; None: as many as fit in max_time
    max_time: float = 1.5  # measured seconds per side and benchmark when rounds is None
    min_rounds: int = 20
    max_rounds: int = 5000
    # Each fresh process pair has its own layout luck, so the rounds are spread over
    # several pairs.  On the 2-core AMD EPYC VM (gate evaluation, 2026-12-01, 40 runs on
    # identical code) the two pairs' estimates differed by about what each pair's own
    # noise explains (SD per pair: numpy 0.7 %, pure Python 1.2 %, pandas 3.4 %), so two
    # pairs side by side cost no precision and half the time of more, shorter pairs in turn.
    pairs: int = 2
    # Pairs measured at once, each pinned to its own CPU (None: one per CPU we may use).
    # A busy neighbour CPU did not make a pair's samples noisier on that VM (block-to-block
    # SD of a numpy loop 4.1 % beside another numpy loop, 6.7 % beside an idle CPU).
    lanes: int | None = None
    round_time: float = 1e-3
    # Rounds per block: as many as fit in block_time, at least 1.  The VM's CPUs switch
    # between a fast and a ~1.9x slower state every few milliseconds (a pure-Python loop:
    # half its 1 ms rounds slow, spells of 2-7 rounds), so the median of a 20 ms block
    # swings with the mix of states, while two single rounds a millisecond apart mostly
    # share one.  Alternating single rounds (block_time 0) cut the noise of the median
    # ratio from 1.4-1.5 % to 0.3-0.4 % for the 1-5 ms benchmarks of suites/gate.
    block_time: float = 0.0
    warmup_time: float = 0.05
    pin: bool = True
    same_layout: bool = True  # ASLR off and equal-size environments within a worker pair
    options: dict[str, Any] = field(default_factory=dict)  # worker config.option overrides
    work_dir: Path = Path(DEFAULT_CACHE_DIR) / "ab"
    ready_timeout: float = 600.0
    command_timeout: float = 900.0


@dataclass
class Measurement:
    """Samples of one benchmark from one measurement: ``[process pair][block][round]``."""

    id: str
    metric: str = "cpu"
    max_memory_regression: float = 0.10
    iterations: int = 0
    base: list[list[list[float]]] = field(default_factory=list)
    head: list[list[list[float]]] = field(default_factory=list)
    base_memory: list[int] = field(default_factory=list)
    head_memory: list[int] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None
    same_layout: bool | None = None  # every worker ran with address randomisation off
    extended: bool = False  # holds a second, longer measurement of an inconclusive first one


class Plan(NamedTuple):
    """How one benchmark is measured in each process pair."""

    blocks: int  # per process pair, even (A B B A cycles)
    per_block: int  # rounds per block
    iterations: int  # calls per round

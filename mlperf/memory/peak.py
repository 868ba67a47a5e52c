"""Peak memory of a block (tracemalloc and the RSS high-water mark) and deep footprints."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PeakMemory", "footprint", "peak_memory"]

_CLEAR_REFS = Path("/proc/self/clear_refs")


def _rss_hwm() -> int | None:
    """Peak RSS (VmHWM) of this process in bytes, or None where /proc is absent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_rss_hwm() -> bool:
    # Writing "5" to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@dataclass
class PeakMemory:
    """What :func:`peak_memory` measured, in bytes.

    ``python`` is the tracemalloc peak above the start (numpy and pandas report
    their buffers to tracemalloc; Arrow's own allocator does not).  ``rss`` is the
    growth of the process's resident-set high-water mark (None where it cannot be
    reset).  ``peak`` is the larger of the two: the figure mlperf gates on.
    """

    python: int = 0
    rss: int | None = None

    @property
    def peak(self) -> int:
        return max(self.python, self.rss or 0)


@contextmanager
def peak_memory(*, trace_python: bool = True, collect: int = 2) -> Iterator[PeakMemory]:
    """Measure the extra peak memory of the enclosed block.

    Parameters
    ----------
    trace_python:
        Also run tracemalloc (it slowed allocation-heavy code 2-3x on a 2-core CI VM,
        2026-11-26; never time a block measured this way).
    collect:
        The oldest garbage-collector generation collected before measuring: 2 (a full
        collection) frees every unreachable cycle first; 1 frees the recent ones, and costs
        nothing where a full collection of a large heap does (330 ms with 1.5 million
        containers alive, Intel Xeon VM, 2026-12-06; the plugin's memory round after every
        benchmark uses 1).

    Returns
    -------
    PeakMemory
        Filled in when the block exits.

    Examples
    --------
    >>> with peak_memory() as mem:
    ...     x = bytearray(10_000_000)
    >>> mem.peak >= 10_000_000
    True
    """
    result = PeakMemory()
    gc.collect(collect)
    started_tracing = False
    if trace_python and not tracemalloc.is_tracing():
        tracemalloc.start()
        started_tracing = True
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
        py_base = tracemalloc.get_traced_memory()[0]
    can_reset = _reset_rss_hwm()
    rss_base = psutil.Process().memory_info().rss
    try:
        yield result
    finally:
        if tracemalloc.is_tracing():
            result.python = max(0, tracemalloc.get_traced_memory()[1] - py_base)
        if started_tracing:
            tracemalloc.stop()
        hwm = _rss_hwm() if can_reset else None
        result.rss = max(0, hwm - rss_base) if hwm is not None else None


def footprint(df: pd.DataFrame | pd.Series) -> int:
    """Deep memory footprint in bytes: every column's buffers (strings included) and the index.

    Parameters
    ----------
    df:
        A DataFrame or Series.

    Returns
    -------
    int
        ``memory_usage(deep=True)`` summed, index included.
    """
    import pandas as pd  # the plugin's memory round imports this module: keep pandas out

    if isinstance(df, pd.Series):
        return int(df.memory_usage(deep=True, index=True))
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"footprint: expected a DataFrame or Series; got {type(df).__name__!r}")
    return int(df.memory_usage(deep=True, index=True).sum())

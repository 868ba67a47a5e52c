"""Helpers shared by the memory suite (an importable module; conftest is not)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlperf.data import make_customers
from mlperf.memory import peak_memory

__all__ = ["MiB", "cpu_ratio", "extra_peak", "timing", "write_customers_csv"]

MiB = 2**20


def write_customers_csv(path: Path, n_rows: int, rows_per_chunk: int = 1_000_000) -> Path:
    """Write ``make_customers`` rows as CSV, one chunk at a time (memory stays bounded).

    The first chunk is ``make_customers(min(n_rows, rows_per_chunk), seed=42)``, so
    the 1M file holds exactly the ``customers_1m`` frame; chunk *i* uses seed 42 + i.
    Written atomically: parallel workers may race to create it.
    """
    if path.exists():
        return path
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    for i, start in enumerate(range(0, n_rows, rows_per_chunk)):
        chunk = make_customers(min(rows_per_chunk, n_rows - start), seed=42 + i)
        chunk.to_csv(tmp, index=False, mode="w" if i == 0 else "a", header=i == 0)
        del chunk
    tmp.replace(path)
    return path


def timing(config: pytest.Config) -> bool:
    """True when benchmarks are timed (not --benchmark-disable)."""
    session = getattr(config, "_benchmarksession", None)
    return session is not None and not session.disabled


def extra_peak(fn: Callable[[], Any]) -> int:
    """Extra peak memory (bytes) of one call, as the plugin gates it."""
    with peak_memory() as mem:
        fn()
    return mem.peak


def cpu_ratio(ours: Callable[[], Any], theirs: Callable[[], Any], pairs: int = 3) -> float:
    """Median process-CPU time of *ours* / *theirs*, measured in interleaved pairs."""
    mine, base = [], []
    for _ in range(pairs):
        for fn, sink in ((ours, mine), (theirs, base)):
            start = time.process_time()
            fn()
            sink.append(time.process_time() - start)
    mine.sort()
    base.sort()
    return mine[len(mine) // 2] / max(base[len(base) // 2], 1e-9)

"""Imported once by the forkserver that forks the ``parallel`` workers.

It loads numpy, numba and the kernels a worker runs (from numba's on-disk cache, or
compiled once here), so every worker forked afterwards starts with them in memory
instead of importing and loading them itself: under load that was 5-7 s a pool
(2026-11-26, a busy 2-core CI VM).
"""

from __future__ import annotations

import numpy as np

from mlperf.compute import _cpu

if _cpu.usable("numba"):  # a broken numba just leaves the workers on safe_numpy
    for _dtype in (np.float32, np.float64):
        _cpu.safe(np.ones((2, 2), dtype=_dtype))

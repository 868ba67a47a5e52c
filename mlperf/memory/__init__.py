"""Memory: dtype optimisation, footprints, peak memory.

:mod:`~mlperf.memory.dtypes` stores every column in the smallest dtype that holds its
values (:func:`optimize_dtypes`); :mod:`~mlperf.memory.peak` measures the extra peak
memory of a block (:func:`peak_memory`) and the deep footprint of a frame
(:func:`footprint`).  Chunked (streaming) aggregation, which bounds memory by one
chunk, is :func:`mlperf.io.chunked_agg`.
"""

from __future__ import annotations

from mlperf.memory.dtypes import REPORT_COLUMNS, FloatMode, optimize_dtypes
from mlperf.memory.peak import PeakMemory, footprint, peak_memory

__all__ = [
    "REPORT_COLUMNS",
    "FloatMode",
    "PeakMemory",
    "footprint",
    "optimize_dtypes",
    "peak_memory",
]

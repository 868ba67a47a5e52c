"""Memory: dtype optimisation, footprints, peak memory.

:mod:`~mlperf.memory.dtypes` stores every column in the smallest dtype that holds its
values (:func:`optimize_dtypes`); :mod:`~mlperf.memory.peak` measures the extra peak
memory of a block (:func:`peak_memory`) and the deep footprint of a frame
(:func:`footprint`).  Chunked (streaming) aggregation, which bounds memory by one
chunk, is :func:`mlperf.io.chunked_agg`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: public name -> the module that defines it; imported on first use, so that the plugin's
#: memory round (``mlperf.memory.peak``) never pays for pandas
_WHERE = {
    "REPORT_COLUMNS": "dtypes",
    "FloatMode": "dtypes",
    "optimize_dtypes": "dtypes",
    "PeakMemory": "peak",
    "footprint": "peak",
    "peak_memory": "peak",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"mlperf.memory.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'mlperf.memory' has no attribute {name!r}")

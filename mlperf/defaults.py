"""Every default threshold of the gates, defined once."""

from __future__ import annotations

__all__ = ["AB_THRESHOLD", "MAX_MEMORY_REGRESSION", "MAX_REGRESSION", "MEMORY_FLOOR_BYTES"]

#: stored-baseline gate: a time REGRESSION is a median ratio above 1 + this (25 %)
MAX_REGRESSION = 0.25
#: both gates: a memory REGRESSION is a peak above 1 + this (10 %) ...
MAX_MEMORY_REGRESSION = 0.10
#: ... and more than this many bytes above the reference (allocator noise on tiny peaks)
MEMORY_FLOOR_BYTES = 2 * 2**20
#: ``mlperf ab``: the smallest relative change that counts (3 %)
AB_THRESHOLD = 0.03

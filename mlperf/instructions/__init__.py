"""Instruction counts of one call under callgrind: a clock that does not drift.

Two halves:

* **outside** (:mod:`._callgrind`): :func:`callgrind_command` and :func:`callgrind_env`
  launch a command (pytest, a script) under ``valgrind --tool=callgrind
  --instr-atstart=no`` with its dumps in one directory; :func:`read_counts` parses
  them into one :class:`Count` per label: every event callgrind collected and the
  estimated cycles.
* **inside** (:mod:`._client`, standard library only, copyable next to the
  ``mlperf ab`` worker): :func:`count_call` makes uncounted warm-up calls, refuses a
  call whose work runs elsewhere (:func:`footprint`), then counts exactly one call:
  zero the counters and start instrumenting right before it, stop and dump them
  under its label right after.

One valgrind process counts any number of calls: each :func:`count_call` writes its
own dump, ``callgrind.out.<pid>.<part>``.  Nothing here is imported at ``import
mlperf`` time, and this package imports only the standard library.

Example::

    out = Path("counts")
    subprocess.run(callgrind_command([sys.executable, "bench.py"], out), env=callgrind_env(out))
    for c in read_counts(out):
        print(c.label, c.instructions, c.estimated_cycles)

where ``bench.py`` calls ``count_call(fn, *args, label="fn")``.
"""

from __future__ import annotations

from mlperf.instructions._callgrind import (
    ALLOCATOR,
    CACHE_OPTIONS,
    COUNT_METHOD,
    CYCLE_WEIGHTS,
    INSTALL_VALGRIND,
    OUT_DIR_ENV,
    PROBES,
    Count,
    ValgrindMissing,
    callgrind_command,
    callgrind_env,
    left_out,
    parse_dump,
    read_counts,
    require_valgrind,
    valgrind_available,
)
from mlperf.instructions._client import (
    Counted,
    Footprint,
    HooksMissing,
    NotCountable,
    count_call,
    footprint,
    hooks,
    running_under_valgrind,
)
from mlperf.instructions._run import Counts, count_benchmarks, session_dir

__all__ = [
    "ALLOCATOR",
    "CACHE_OPTIONS",
    "COUNT_METHOD",
    "CYCLE_WEIGHTS",
    "INSTALL_VALGRIND",
    "OUT_DIR_ENV",
    "PROBES",
    "Count",
    "Counted",
    "Counts",
    "Footprint",
    "HooksMissing",
    "NotCountable",
    "ValgrindMissing",
    "callgrind_command",
    "callgrind_env",
    "count_benchmarks",
    "count_call",
    "footprint",
    "hooks",
    "left_out",
    "parse_dump",
    "read_counts",
    "require_valgrind",
    "running_under_valgrind",
    "session_dir",
    "valgrind_available",
]

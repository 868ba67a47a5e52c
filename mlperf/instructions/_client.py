"""Inside a process that runs under callgrind: count one call, or say why it cannot be.

Standalone on purpose: this file imports only the standard library and nothing from
mlperf, so ``mlperf ab`` can copy it next to its worker (as it copies
``_mlperf_ab_worker.py``) and the worker can import it inside the *other* revision.

The client requests are issued by the prebuilt native hooks module that
``pytest-codspeed`` ships, loaded from its file without importing pytest-codspeed's
package or pytest plugin (:func:`hooks`).

A count depends on everything the process did before it, through the state of its
heap: whatever runs here before the counted call must be the same in every run.
That is why :func:`footprint` reads nothing whose size depends on the machine
(a scan of ``/proc`` moved a pandas count by up to 0.3 %) and why the dumps are not
parsed in this process.
"""

from __future__ import annotations

import gc
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Counted",
    "Footprint",
    "HooksMissing",
    "NotCountable",
    "count_call",
    "footprint",
    "hooks",
    "running_under_valgrind",
]

_FIX = 'pip install "pytest-codspeed>=5,<6" (or "pytest-mlperf[instructions]")'
_HOOK_FUNCTIONS = (
    "instrument_hooks_init",
    "instrument_hooks_is_instrumented",
    "instrument_hooks_start_benchmark",
    "instrument_hooks_stop_benchmark",
    "instrument_hooks_set_executed_benchmark",
)


class HooksMissing(ImportError):
    """The client-request hooks (pytest-codspeed's native module) cannot be loaded."""


class NotCountable(RuntimeError):
    """The call's work does not run in this thread, so its instructions are not its cost."""


# --------------------------------------------------------------------- hooks

_hooks: tuple[Any, Any] | None = None


def hooks() -> tuple[Any, Any]:
    """Return pytest-codspeed's native hooks module and its initialised instance.

    The extension ``pytest_codspeed/instruments/hooks/dist_instrument_hooks*.so`` is
    loaded from its file: the ``pytest_codspeed`` package is located, never imported.
    Its functions used here: ``instrument_hooks_start_benchmark`` (CALLGRIND_ZERO_STATS,
    CALLGRIND_START_INSTRUMENTATION), ``instrument_hooks_stop_benchmark``
    (CALLGRIND_STOP_INSTRUMENTATION), ``instrument_hooks_set_executed_benchmark``
    (CALLGRIND_DUMP_STATS_AT with the label) and ``instrument_hooks_is_instrumented``
    (RUNNING_ON_VALGRIND).  Outside valgrind they do nothing.

    Raises
    ------
    HooksMissing
        When pytest-codspeed is not installed, or its module lacks those functions.
    """
    global _hooks
    if _hooks is None:
        module = _load_hooks_module()
        _hooks = (module, module.instrument_hooks_init())
    return _hooks


def _load_hooks_module() -> Any:
    spec = importlib.util.find_spec("pytest_codspeed")  # locates the package, runs none of it
    folders = list(spec.submodule_search_locations or ()) if spec else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder, "instruments", "hooks", "dist_instrument_hooks" + suffix)
            if path.is_file():
                break
        else:
            continue
        # the init function is PyInit_dist_instrument_hooks: the name must end so
        loader = importlib.machinery.ExtensionFileLoader("dist_instrument_hooks", str(path))
        module_spec = importlib.util.spec_from_file_location(
            "dist_instrument_hooks", path, loader=loader
        )
        assert module_spec is not None
        module = importlib.util.module_from_spec(module_spec)
        loader.exec_module(module)
        missing = [name for name in _HOOK_FUNCTIONS if not hasattr(module, name)]
        if missing:
            raise HooksMissing(f"mlperf: {path} lacks {', '.join(missing)}; {_FIX}")
        return module
    where = f" (found {folders[0]!r} without its native module)" if folders else ""
    raise HooksMissing(f"mlperf: counting instructions needs pytest-codspeed{where}; {_FIX}")


def running_under_valgrind() -> bool:
    """Return True when this process runs under valgrind (any tool: only callgrind counts)."""
    if "valgrind" not in os.environ.get("LD_PRELOAD", ""):  # no hooks needed to say no
        return False
    module, instance = hooks()
    return bool(module.instrument_hooks_is_instrumented(instance))


# ------------------------------------------------------------------ footprint


@dataclass(frozen=True)
class Footprint:
    """Where the time of some calls went, to tell whether their work runs here.

    Seconds over all the calls measured: ``wall``; ``cpu`` of the calling thread;
    ``queued``, the calling thread's wait for a CPU (``/proc/thread-self/schedstat``;
    None where the kernel does not say); ``threads_cpu`` of the process's other
    threads; ``children_cpu`` of child processes, reaped or live ``multiprocessing``
    ones (``children`` of those were busy).
    """

    wall: float
    cpu: float
    queued: float | None
    threads_cpu: float
    children_cpu: float
    children: int

    def refusal(self) -> str | None:
        """Return why the instruction clock cannot measure these calls, or None.

        Refused when child processes computed at all (over 0.5 ms: under valgrind
        this process runs 10-50x slower than they do, so no share of the CPU time is a
        fair threshold), when other threads did more than 10 % of the CPU work, or
        when the calling thread was blocked (off a CPU and not queued for one: I/O, a
        lock, another process, a server) longer than it computed.  Where the queueing
        is unknown, all time off the CPU counts as blocked and the limit is 3x, so that
        a busy machine does not read as waiting.  Blocked or threads' time under 20 ms
        is ignored.
        """
        total = self.cpu + self.threads_cpu + self.children_cpu
        if self.children_cpu > 0.0005:
            return (
                f"its work runs in other processes ({self.children} busy, "
                f"{self.children_cpu / total:.0%} of its CPU time); callgrind counts only this one"
            )
        if self.threads_cpu > max(0.1 * total, 0.02):
            return (
                f"{self.threads_cpu / total:.0%} of its CPU time is in other threads, which "
                "valgrind runs one at a time: the count would not repeat"
            )
        blocked = self.wall - self.cpu - (self.queued or 0.0)
        limit = 1.0 if self.queued is not None else 3.0
        if blocked > limit * self.cpu and blocked > 0.02:
            return (
                f"it waits more than it computes ({blocked * 1e3:.0f} ms blocked, "
                f"{self.cpu * 1e3:.0f} ms on a CPU): I/O, another process or a server; "
                "instructions do not see waiting"
            )
        return None


def footprint(fn: Callable[..., Any], /, *args: Any, calls: int = 1, **kwargs: Any) -> Footprint:
    """Call ``fn(*args, **kwargs)`` ``calls`` times and return where its time went.

    Other processes seen: reaped children and live ``multiprocessing`` children
    (process pools).  Work in a process started otherwise (a JVM, a cluster, a cloud
    service) shows as the calling thread being blocked.
    """
    before = _snapshot()
    for _ in range(calls):
        fn(*args, **kwargs)
    after = _snapshot()
    wall, cpu, process, children = (b - a for a, b in zip(before[:4], after[:4], strict=True))
    queued = None if before[4] is None or after[4] is None else after[4] - before[4]
    busy = sum(1 for pid, c in after[5].items() if c > before[5].get(pid, 0.0))
    return Footprint(wall, cpu, queued, max(process - cpu, 0.0), max(children, 0.0), busy)


_SCHEDSTAT = bytearray(128)  # read into a fixed buffer: no allocation whose size varies


def _queued() -> float | None:
    """Seconds the calling thread has waited on a run queue, or None where unknown."""
    try:
        with open("/proc/thread-self/schedstat", "rb", buffering=0) as f:
            n = f.readinto(_SCHEDSTAT)
    except OSError:
        return None
    fields = _SCHEDSTAT[:n].split()
    return int(fields[1]) / 1e9 if len(fields) >= 2 else None


def _snapshot() -> tuple[float, float, float, float, float | None, dict[int, float]]:
    reaped = os.times()
    live = _pool_cpu()
    children = reaped.children_user + reaped.children_system + sum(live.values())
    queued = _queued()
    return time.perf_counter(), time.thread_time(), time.process_time(), children, queued, live


def _pool_cpu() -> dict[int, float]:
    """CPU seconds of each live ``multiprocessing`` child (pools, LocalCluster nannies)."""
    multiprocessing = sys.modules.get("multiprocessing")  # never imported just for this
    if multiprocessing is None:
        return {}
    cpu = {}
    for child in multiprocessing.active_children():
        try:  # nanoseconds on a CPU; /proc/<pid>/stat would tick in 10 ms
            with open(f"/proc/{child.pid}/schedstat", "rb") as f:
                cpu[child.pid] = int(f.read().split()[0]) / 1e9
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or no /proc
    return cpu


# --------------------------------------------------------------------- count


@dataclass(frozen=True)
class Counted:
    """What :func:`count_call` returns: the counted call's result, its dump's label, the footprint.

    The count itself is in the dump; the launcher reads it (``read_counts``).
    """

    result: Any
    label: str
    footprint: Footprint | None


def count_call(
    fn: Callable[..., Any],
    /,
    *args: Any,
    label: str,
    warmup: int = 2,
    check: bool = True,
    **kwargs: Any,
) -> Counted:
    """Count the instructions of one call of ``fn(*args, **kwargs)``, after warm-up calls.

    The ``warmup`` calls run uncounted (caches filled, numba compiled, lazy imports
    done, pools started); the last of them gives the :class:`Footprint` (the first
    may be all set-up: a process pool's start hid the work its workers then did).
    Then: a full garbage collection (so that
    collections inside the call depend on the call alone), zero the counters and start
    instrumenting, the call, stop, and dump the counters under ``label``.  Nothing else
    is counted but the hooks themselves: 1,692 instructions (CPython 3.11, x86-64).

    Parameters
    ----------
    fn, args, kwargs
        The call to count.
    label
        Names the dump (a benchmark id); newlines and non-ASCII come out escaped.
    warmup
        Uncounted calls before the counted one.
    check
        Refuse calls whose work runs elsewhere (:meth:`Footprint.refusal`); needs
        ``warmup >= 1``.

    Raises
    ------
    NotCountable
        When ``check`` and the warm-up calls' footprint gives a reason (nothing is dumped).
    RuntimeError
        When this process does not run under valgrind.
    HooksMissing
        When pytest-codspeed is not installed.
    """
    module, instance = hooks()
    if not module.instrument_hooks_is_instrumented(instance):
        raise RuntimeError(
            "mlperf: count_call needs a process running under callgrind; launch it with "
            "mlperf.instructions.callgrind_command(argv, out_dir)"
        )
    for _ in range(warmup - 1):
        fn(*args, **kwargs)
    seen = footprint(fn, *args, **kwargs) if warmup > 0 else None
    reason = seen.refusal() if seen is not None and check else None
    if reason is not None:
        raise NotCountable(f"{label}: not counted: {reason}")
    wire = label.encode("ascii", "backslashreplace").decode().replace("\n", "\\n")
    start, stop = module.instrument_hooks_start_benchmark, module.instrument_hooks_stop_benchmark
    gc.collect()
    start(instance)
    try:
        result = fn(*args, **kwargs)
    finally:
        stop(instance)
        module.instrument_hooks_set_executed_benchmark(instance, os.getpid(), wire.encode())
    return Counted(result, wire, seen)

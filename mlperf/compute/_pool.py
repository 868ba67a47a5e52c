"""The ``parallel`` method: a reused process pool over row chunks in shared memory."""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from typing import TYPE_CHECKING

import numpy as np

from mlperf.compute import _cpu

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.shared_memory import SharedMemory

# One pool per process, created by the first "parallel" call and reused after that.
# forkserver, not fork: forking a process that runs threads (pyarrow, xdist) can
# deadlock, and it is Python 3.14's default anyway.  The forkserver imports numpy and
# numba and loads the kernels once (mlperf.compute._worker), so the first call costs
# ~1-3 s and a pool started after shutdown_pool() ~0.05-0.2 s; a warm call costs ~1 ms
# of inter-process traffic (every figure here: 2026-11-26, a busy 2-core CI VM).
# Like any spawn/forkserver pool, its workers re-run the main script's top level:
# scripts need an `if __name__ == "__main__":` guard.  Rows go through shared memory,
# not pickles: one copy in, n_rows floats out.  The blocks stay for the next call (a
# fresh 400 MB block costs ~0.4 s of page faults in every process) until a larger
# array needs more or shutdown_pool() frees them.
#
# On 2 cores this gains nothing: the copy, the traffic and the second worker's fight
# for a core cost more than the core saves (10000x100: ~14-70x the read bound, against
# ~1.5x for "safe" alone; 400 MB: ~4.5x against ~1.1x; the ratios that
# suites/compute/test_row_norms_bench.py reports for every method).  It is here to
# measure that, and for machines with many cores and arrays already in shared memory.


class _Pool:
    def __init__(self) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pid = os.getpid()
        affinity = getattr(os, "sched_getaffinity", None)
        self.workers = len(affinity(0)) if affinity else (os.cpu_count() or 1)
        context = multiprocessing.get_context("forkserver")
        # the forkserver imports these once; a worker forked from it starts with them
        # (no effect if some other code already started this process's forkserver)
        context.set_forkserver_preload(["mlperf.compute._worker"])
        self.executor: ProcessPoolExecutor = ProcessPoolExecutor(self.workers, mp_context=context)
        self.blocks: dict[str, SharedMemory] = {}

    def block(self, role: str, nbytes: int) -> SharedMemory:
        from multiprocessing.shared_memory import SharedMemory

        shm = self.blocks.get(role)
        if shm is None or shm.size < nbytes:
            self.release(role)
            shm = self.blocks[role] = SharedMemory(create=True, size=max(nbytes, 1))
        return shm

    def release(self, role: str) -> None:
        shm = self.blocks.pop(role, None)
        if shm is not None:
            shm.close()
            shm.unlink()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        for role in list(self.blocks):
            self.release(role)


_POOL: _Pool | None = None
_POOL_LOCK = threading.Lock()


def shutdown_pool() -> None:
    """Stop the ``parallel`` method's worker processes and free their shared memory.

    Registered with :mod:`atexit`; call it to reclaim the
    workers sooner.  The next ``parallel`` call starts a new pool (and pays for it).
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None and _POOL.pid == os.getpid():
            _POOL.close()
        _POOL = None


def parallel(x: np.ndarray) -> np.ndarray:
    from concurrent.futures.process import BrokenProcessPool

    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():  # a forked child must not use it
            _POOL = _Pool()
        pool, n = _POOL, x.shape[0]
        src, dst = pool.block("in", x.nbytes), pool.block("out", n * 8)
        np.copyto(np.ndarray(x.shape, x.dtype, buffer=src.buf), x)
        cuts = np.linspace(0, n, min(pool.workers, n) + 1).astype(int).tolist()
        method = _cpu.serial_safe()
        try:
            futures = [
                pool.executor.submit(
                    _chunk, src.name, dst.name, x.shape, x.dtype.str, lo, hi, method
                )
                for lo, hi in itertools.pairwise(cuts)
            ]
            for future in futures:
                future.result()
        except BrokenProcessPool as exc:  # raised by submit() or result(), whichever sees it
            pool.close()
            _POOL = None
            raise RuntimeError(
                "row_norms(method='parallel'): a worker process died; if this ran from a "
                'script, put its top level under `if __name__ == "__main__":` (workers '
                "start by re-running the main script)"
            ) from exc
        return np.ndarray((n,), np.float64, buffer=dst.buf).copy()


atexit.register(shutdown_pool)  # a no-op unless a pool was started


_ATTACHED: dict[str, SharedMemory] = {}  # in a worker: role -> the block it last attached


def _attach(role: str, name: str) -> SharedMemory:
    from multiprocessing.shared_memory import SharedMemory

    shm = _ATTACHED.get(role)
    if shm is None or shm.name != name:
        if shm is not None:
            shm.close()
        shm = _ATTACHED[role] = SharedMemory(name=name)
    return shm


def _chunk(
    src: str, dst: str, shape: tuple[int, int], dtype: str, lo: int, hi: int, method: str
) -> None:
    x = np.ndarray(shape, np.dtype(dtype), buffer=_attach("in", src).buf)
    out = np.ndarray((shape[0],), np.float64, buffer=_attach("out", dst).buf)
    out[lo:hi] = _cpu.SERIAL_SAFE[method](x[lo:hi])

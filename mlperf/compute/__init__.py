"""Row L2 norms, the tutorial's ways and faster, correct ones, behind one registry.

``row_norms(x, method)`` computes ``sqrt(sum(x[i, :] ** 2))`` for every row.  Every
method takes float32/float64 (integers and float16 are widened first), any memory
order, strides or byte order, and 0 rows or 0 columns; every method returns a new
float64 array.  A masked array with masked values is refused (each method would read
the values under the mask).
float32 input is squared and summed in float64, so no float32 square overflows.

Non-finite input follows one rule in every method: a row holding a NaN gives NaN
(also when it holds an inf: NaN means "unknown", as in ``numpy.linalg.norm``; C's
``hypot`` would say inf), otherwise a row holding an inf gives inf.

Only the methods flagged ``safe`` in :data:`METHODS` are right for every finite
input.  The others square in float64 and return inf once a square or the sum
overflows (|x| >~ 1e154) and lose precision or return 0 once squares underflow
(|x| <~ 1e-154), as the tutorial's code does.  ``safe`` keeps the fast sum of
squares and rescales by a power of two only the rows whose sum left
[2**-900, DBL_MAX]; it costs about what ``numba_fastmath`` costs, so ``auto`` uses it.

numba is imported inside functions and compiled lazily (``cache=True``): the first
call per dtype/layout costs ~0.25 s of compiling (~0.15 s in later processes).  The
numba threading layer defaults to ``workqueue`` (unless ``NUMBA_THREADING_LAYER``
is set): on busy machines the OpenMP layer made ``parallel=True`` 28-57x slower.
No kernel here uses ``parallel=True``: with ``workqueue``, a ``prange`` version of
numba_fastmath was 2x slower at 10000 x 100 and no faster at 400 MB.  (These
figures: 2026-11-26, a 2-core CI VM.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf._optional import MissingDependency, install_hint
from mlperf.compute import _cpu, _cuda, _pool
from mlperf.compute._pool import shutdown_pool

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "METHODS",
    "Method",
    "methods",
    "read_bound",
    "read_probe",
    "row_norms",
    "shutdown_pool",
]


@dataclass(frozen=True)
class Method:
    """One way of computing row norms.

    ``func`` takes a validated 2-D float32/float64 array with at least one row and
    one column and returns float64 norms.  ``safe`` means correct for every finite
    input; ``tutorial`` marks the tutorial's own approach (its code is kept in
    ``suites/compute/compute_tutorial.py``); ``requires`` names the optional module
    it needs.
    """

    name: str
    func: Callable[[Any], Any]
    summary: str
    safe: bool = False
    tutorial: bool = False
    requires: str | None = None
    device: str = "cpu"

    def available(self) -> bool:
        """Return True when the optional module this method needs imports here."""
        return self.requires is None or _cpu.usable(self.requires)


# --------------------------------------------------------------------- registry

_CUDA_METHOD = Method(
    "cuda",
    _cuda.row_norms_cuda,
    "CuPy raw kernel: 16-byte loads, a few lanes per row, safe rescaling",
    safe=True,
    requires="cupy",
    device="cuda",
)

#: the CPU methods; :func:`methods` adds ``cuda`` where a device is present
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("python", _cpu.python_loop, "the tutorial's pure-Python double loop", tutorial=True),
        Method(
            "numba",
            _cpu.numba_tutorial,
            "the tutorial's loop under numba @njit; adds in its order: bit for bit the same",
            tutorial=True,
            requires="numba",
        ),
        Method(
            "numba_fastmath",
            _cpu.numba_fastmath,
            "numba loop with a reassociated (SIMD) sum; Fortran order summed column-wise",
            requires="numba",
        ),
        Method(
            "vectorized", _cpu.vectorized, "the tutorial's np.sqrt(np.sum(x**2, 1))", tutorial=True
        ),
        Method("einsum", _cpu.einsum, "np.einsum('ij,ij->i', x, x)"),
        Method("vecdot", _cpu.vecdot, "np.vecdot(x, x, axis=1)"),
        Method(
            "parallel",
            _pool.parallel,
            "a reused process pool over row chunks in shared memory, each running the safe kernel",
            safe=True,
        ),
        Method(
            "safe",
            _cpu.safe,
            "numba_fastmath, then power-of-two rescaling of the rows "
            "whose sum of squares over- or underflowed",
            safe=True,
            requires="numba",
        ),
        Method("safe_numpy", _cpu.safe_numpy, "the same as safe, in numpy", safe=True),
    )
}


def methods() -> dict[str, Method]:
    """Return every method: :data:`METHODS`, plus ``cuda`` when CuPy sees a device.

    Returns
    -------
    dict
        Method name -> :class:`Method`; ``Method.available()`` says if its needs are met.
    """
    return {**METHODS, "cuda": _CUDA_METHOD} if _cuda.ready() else dict(METHODS)


def row_norms(x: ArrayLike, method: str = "auto") -> Any:
    """Return the Euclidean norm of every row of ``x``.

    Parameters
    ----------
    x:
        2-D array-like of float32 or float64 (integers and float16 are widened), in
        any memory order, strides or byte order (big-endian is converted first).  A
        masked array is refused if anything is masked.  A CuPy array goes to ``cuda`` and its result
        stays on the device.
    method:
        A name from :func:`methods`, or ``"auto"``: the fastest method that is right
        for every input -- ``safe`` (``safe_numpy`` without numba; ``cuda`` for a CuPy
        array).  ``safe`` costs what ``numba_fastmath`` costs (1.1-1.2x it, 1.2-1.5x a
        plain read of x: the read-bound column of ``suites/compute/test_row_norms_bench.py``,
        2026-11-26), so no cheaper unsafe method is worth a check.
        It never picks ``parallel``: on 2 cores, copying into shared memory costs
        about what the second core saves.

    Returns
    -------
    numpy.ndarray
        float64 norms, shape ``(n_rows,)``.  A NaN in a row gives NaN, else an inf gives inf.

    Raises
    ------
    ValueError
        ``x`` is not 2-D, is a masked array with masked values, or ``method`` is unknown.
    TypeError
        ``x`` is bool, complex, non-numeric, or a float wider than float64.
    MissingDependency
        The method needs numba or CuPy and it is not installed.
    """
    if type(x).__module__.split(".")[0] == "cupy":
        if method not in ("auto", "cuda"):
            raise ValueError(
                f"row_norms: a CuPy array needs method 'cuda' or 'auto'; got {method!r}; "
                "pass x.get() to use a CPU method"
            )
        method = "cuda"
    elif method == "auto":
        method = _cpu.serial_safe()
    chosen = METHODS.get(method) or methods().get(method)
    if chosen is None:
        hint = " ('cuda' needs CuPy and a CUDA device)" if method == "cuda" else ""
        raise ValueError(
            f"row_norms: unknown method {method!r}{hint}; "
            f"choose 'auto' or one of {', '.join(methods())}"
        )
    if not chosen.available():
        raise MissingDependency(
            f"row_norms: method {method!r} needs {chosen.requires!r}, which does not import "
            f"here; install it with: {install_hint(str(chosen.requires))}, or use method='auto'"
        )
    if chosen.device == "cuda":
        return chosen.func(x)
    arr = _cpu.as_matrix(x)
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        return np.zeros(arr.shape[0])
    return chosen.func(arr)


def read_probe(x: ArrayLike) -> Callable[[], object]:
    """Return a function that makes one read-only pass over ``x``'s memory.

    No row-norm method can beat it: it reads the same bytes in storage order and
    adds them (numba when it works, else ``numpy.sum``).  For an array that fits the
    L3 cache (10000 x 100 float64 = 8 MB) its time is the L3 read bound; for larger
    ones, the DRAM bound.  A strided view is copied first (``np.ravel``), so its
    bound counts the values, not every cache line the view touches.
    """
    flat = np.ravel(_cpu.as_matrix(x), order="K")  # a view when x is contiguous
    probe = _cpu.kernels().read_sum if _cpu.usable("numba") else np.sum
    probe(flat)  # compile here, not in the first timed pass
    return lambda: probe(flat)


def read_bound(x: ArrayLike, repeat: int = 51, clock: str = "wall") -> float:
    """Return the median seconds of one read-only pass over ``x`` (see :func:`read_probe`).

    Parameters
    ----------
    x:
        The array the methods are timed on.
    repeat:
        Timed passes (after one untimed warm-up); the median is returned.
    clock:
        ``"wall"`` (``time.perf_counter``) or ``"cpu"`` (``time.process_time``, far
        steadier on a busy machine, but blind to work done in other processes).
    """
    timer = _CLOCKS.get(clock)
    if timer is None:
        raise ValueError(f"read_bound: clock must be 'wall' or 'cpu'; got {clock!r}")
    probe = read_probe(x)
    times = []
    for _ in range(repeat):
        start = timer()
        probe()
        times.append(timer() - start)
    return float(np.median(times))


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}

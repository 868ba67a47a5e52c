"""CPU row-norm kernels: input checks, numba kernel sources (compiled lazily), numpy methods."""

from __future__ import annotations

import functools
import math
import os
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf._optional import require

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

#: a row whose float64 sum of squares lies in [TINY_SQ, HUGE_SQ] lost nothing to
#: overflow, and what underflow dropped (< n_cols * 2**-1074) is below 2**-170 of it
TINY_SQ = 2.0**-900
HUGE_SQ = float(np.finfo(np.float64).max)

# ------------------------------------------------------------------ input checks


def target_dtype(dtype: np.dtype[Any], shape: tuple[int, ...]) -> np.dtype[Any]:
    """The float dtype the kernels run on, or a clear error for input they must refuse."""
    kind = dtype.kind
    if kind == "b":
        raise TypeError(
            f"row_norms: x must be numeric; got dtype {dtype!r}; the norm of a mask is "
            "sqrt(count of True): pass x.astype(np.float64) if that is what you mean"
        )
    if kind == "c":
        raise TypeError(
            f"row_norms: complex input is not supported; got dtype {dtype!r}; "
            "pass np.abs(x) (the norms are the same)"
        )
    if kind not in "fiu" or (kind == "f" and dtype.itemsize > 8):
        raise TypeError(
            f"row_norms: x must hold float32, float64 or integers; got dtype {dtype!r}; "
            "convert it with x.astype(np.float64)"
        )
    if len(shape) != 2:
        raise ValueError(
            f"row_norms: x must be 2-D (rows x columns); got shape {shape!r}; "
            "pass x.reshape(1, -1) for one row or x.reshape(-1, 1) for one column"
        )
    if kind in "iu":
        return np.dtype(np.float64)  # exact up to 2**53, as in numpy.linalg.norm
    if dtype.itemsize < 4:
        return np.dtype(np.float32)  # float16: exact
    # native byte order: numba compiles no kernel for big-endian ('>f8') arrays
    return dtype.newbyteorder("=")


def as_matrix(x: ArrayLike) -> np.ndarray:
    if isinstance(x, np.ma.MaskedArray):
        masked = np.ma.getmaskarray(x)
        if masked.any():
            where = tuple(int(i) for i in np.argwhere(masked)[0])
            count = int(masked.sum())
            raise ValueError(
                f"row_norms: x is a masked array with {count} masked "
                f"value{'s' if count != 1 else ''} (the first at {where!r}); every method "
                f"would read the values under the mask; pass x.filled(0.0) to leave them "
                f"out of the norms, or x.filled(np.nan) to make their rows NaN"
            )
        x = x.data
    arr = np.asarray(x)
    target = target_dtype(arr.dtype, arr.shape)
    return arr if arr.dtype == target else arr.astype(target)


# ------------------------------------------------------- kernels (numba-compiled)
# Plain Python functions, compiled lazily by kernels(); they also run uncompiled.


def _rows_sumsq(x: np.ndarray, out: np.ndarray) -> None:
    n, m = x.shape
    for i in range(n):
        s = 0.0
        for j in range(m):
            v = np.float64(x[i, j])
            s += v * v
        out[i] = s


def _cols_sumsq(xt: np.ndarray, out: np.ndarray) -> None:
    # xt is a Fortran-ordered x transposed: walking it row-major reads memory in order
    m, n = xt.shape
    for j in range(n):
        out[j] = 0.0
    for i in range(m):
        for j in range(n):
            v = np.float64(xt[i, j])
            out[j] += v * v


def _finish_safe(x: np.ndarray, out: np.ndarray) -> None:
    # out holds sums of squares; rows outside [TINY_SQ, HUGE_SQ] (NaN too) are redone
    n, m = x.shape
    for i in range(n):
        s = out[i]
        if s >= TINY_SQ and s <= HUGE_SQ:
            out[i] = math.sqrt(s)
            continue
        amax = 0.0
        nan = False
        for j in range(m):
            v = abs(float(x[i, j]))
            if math.isnan(v):
                nan = True
            elif v > amax:
                amax = v
        if nan:
            out[i] = np.nan
        elif amax == np.inf or amax == 0.0:
            out[i] = amax
        else:
            e = math.frexp(amax)[1]  # scale by 2**-e: exact, and max|x| lands in [0.5, 1)
            t = 0.0
            for j in range(m):
                v = math.ldexp(np.float64(x[i, j]), -e)
                t += v * v
            out[i] = math.ldexp(math.sqrt(t), e)


def _read_sum(flat: np.ndarray) -> float:
    s = 0.0
    for i in range(flat.size):  # indexed: numba does not vectorise `for v in flat`
        s += flat[i]
    return s


# reassociation lets LLVM vectorise the sums; no "nnan"/"ninf", which would let it
# assume away the NaN/inf that the methods must propagate
_FAST = {"reassoc", "contract", "nsz", "arcp"}


@functools.cache
def kernels() -> types.SimpleNamespace:
    chosen = "NUMBA_THREADING_LAYER" in os.environ
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")  # inherited by workers
    numba = require("numba", "row_norms' compiled methods")
    if not chosen:  # numba may have been imported (and read the variable) before us
        numba.config.THREADING_LAYER = "workqueue"

    def jit(func: Callable[..., Any], name: str, **options: Any) -> Any:
        # numba's on-disk cache is keyed by function name, not by options: one name each
        copy = types.FunctionType(func.__code__, func.__globals__, name)
        copy.__qualname__ = name
        return numba.njit(cache=True, nogil=True, **options)(copy)

    return types.SimpleNamespace(
        rows_fast=jit(_rows_sumsq, "_k_rows_fast", fastmath=_FAST),
        cols_fast=jit(_cols_sumsq, "_k_cols_fast", fastmath=_FAST),
        # the tutorial's loop: the same sums, strictly in order (no SIMD)
        tutorial=jit(_rows_sumsq, "_k_rows_strict"),
        finish_safe=jit(_finish_safe, "_k_finish_safe"),
        read_sum=jit(_read_sum, "_k_read_sum", fastmath=_FAST),
    )


def numba_sumsq(x: np.ndarray) -> np.ndarray:
    k = kernels()
    out = np.empty(x.shape[0])
    if x.flags.f_contiguous and not x.flags.c_contiguous:
        k.cols_fast(x.T, out)
    else:
        k.rows_fast(x, out)
    return out


# ------------------------------------------------------------------- the methods


def python_loop(x: np.ndarray) -> np.ndarray:
    # the tutorial's loop, element by element through x[i][j]; squared as Python floats
    result = []
    for i in range(len(x)):
        sum_val = 0.0
        for j in range(len(x[i])):
            v = float(x[i][j])
            sum_val += v * v
        result.append(math.sqrt(sum_val))
    return np.array(result, dtype=np.float64)


def _root(sums: np.ndarray) -> np.ndarray:
    np.sqrt(sums, out=sums)
    return sums


def numba_tutorial(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0])
    kernels().tutorial(x, out)
    return _root(out)


def numba_fastmath(x: np.ndarray) -> np.ndarray:
    return _root(numba_sumsq(x))


def vectorized(x: np.ndarray) -> np.ndarray:
    # the tutorial's np.sqrt(np.sum(d**2, 1)), but float32 is squared in float64
    out: np.ndarray = np.sqrt(np.sum(np.square(x, dtype=np.float64), axis=1))
    return out


def einsum_sumsq(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    return out


def einsum(x: np.ndarray) -> np.ndarray:
    return _root(einsum_sumsq(x))


def vecdot(x: np.ndarray) -> np.ndarray:
    # vecdot's own float32->float64 casting is 40x slower than one astype copy
    # (2026-11-26, a 2-core CI VM)
    x64 = x.astype(np.float64, copy=False)
    return _root(np.vecdot(x64, x64, axis=1))  # type: ignore[call-overload]  # stub: no axis


def safe(x: np.ndarray) -> np.ndarray:
    out = numba_sumsq(x)
    kernels().finish_safe(x, out)
    return out


def scaled_numpy(rows: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        amax = np.max(np.abs(rows), axis=1)
    exp = np.frexp(amax)[1]  # 0 for 0, inf and NaN, which then pass through unscaled
    scaled = np.ldexp(rows.astype(np.float64), -exp[:, None])
    out: np.ndarray = np.ldexp(np.sqrt(einsum_sumsq(scaled)), exp)
    return out


def safe_numpy(x: np.ndarray) -> np.ndarray:
    out: np.ndarray
    with np.errstate(over="ignore", under="ignore"):  # the rows it hits are redone below
        if x.dtype == np.float64 and x.flags.c_contiguous:
            out = np.vecdot(x, x, axis=1)  # type: ignore[call-overload]  # stub lacks axis
        else:
            out = einsum_sumsq(x)
    redo = ~((out >= TINY_SQ) & (out <= HUGE_SQ))
    np.sqrt(out, out=out)
    if redo.any():
        out[redo] = scaled_numpy(x[redo])
    return out


@functools.cache
def usable(module: str) -> bool:
    """True when *module* works here: installed is not enough (numba may refuse a newer numpy)."""
    try:
        if module == "numba":
            kernels().finish_safe(np.ones((1, 1)), np.ones(1))  # imports and compiles
        else:
            require(module)
    except Exception:  # noqa: BLE001 -- any failure means "not usable here", and auto moves on
        return False
    return True


def serial_safe() -> str:
    """Name of the fastest method that is right for every input, without a device."""
    return "safe" if usable("numba") else "safe_numpy"


#: the serial methods a ``parallel`` worker may run, by name
SERIAL_SAFE: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "safe": safe,
    "safe_numpy": safe_numpy,
}

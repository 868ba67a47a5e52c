"""The ``cuda`` method: a CuPy raw kernel (numba-cuda cannot compile on the GPU image)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from mlperf._optional import available, require
from mlperf.compute._cpu import as_matrix, target_dtype

# Lanes read consecutive columns (coalesced in C order), square and sum in float64,
# and reduce with shuffles.  A row whose sum of squares left [TINY_SQ, HUGE_SQ] is
# redone like _cpu._finish_safe, by a whole warp (the test is the same in its lanes).

_CUDA_SOURCE = r"""
#define TINY_SQ 0x1p-900
#define HUGE_SQ 1.7976931348623157e308
#define FULL 0xffffffffu

// CuPy appends -ftz=true to every compile, which also flushes float32 subnormals in
// the float->double conversion: widen those by hand (exactly).
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ double widen(float v) {
    unsigned int bits = __float_as_uint(v);
    if ((bits & 0x7f800000u) != 0u) return (double)v;  // normal, inf or NaN
    double d = (double)(bits & 0x007fffffu) * 0x1p-149;
    return (bits >> 31) ? -d : d;
}

__device__ __forceinline__ double warp_sum(double s) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
    return s;
}

// NaN if the row holds one; else max|x| when that is inf or 0; else the sum of
// squares of the row scaled by 2**-e (exact), e the exponent of max|x|.
template <typename T>
__device__ double rescaled(const T* row, long long m, long long cs, int lane) {
    double amax = 0.0;
    int has_nan = 0;
    for (long long j = lane; j < m; j += 32) {
        double v = fabs(widen(row[j * cs]));
        if (v != v) has_nan = 1; else amax = fmax(amax, v);
    }
    for (int o = 16; o > 0; o >>= 1) amax = fmax(amax, __shfl_xor_sync(FULL, amax, o));
    if (__any_sync(FULL, has_nan)) return __longlong_as_double(0x7ff8000000000000LL);
    if (amax > HUGE_SQ || amax == 0.0) return amax;
    int e;
    frexp(amax, &e);
    double t = 0.0;
    for (long long j = lane; j < m; j += 32) {
        double v = ldexp(widen(row[j * cs]), -e);
        t = fma(v, v, t);
    }
    return ldexp(sqrt(warp_sum(t)), e);
}

// General rows (any strides): one warp per row, lanes on consecutive columns.
template <typename T>
__global__ void row_norms(const T* __restrict__ x, long long n, long long m,
                          long long rs, long long cs, double* __restrict__ out) {
    const int lane = threadIdx.x & 31;
    const long long warps = ((long long)gridDim.x * blockDim.x) >> 5;
    for (long long i = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5; i < n;
         i += warps) {
        const T* row = x + i * rs;
        double s = 0.0;
#pragma unroll 4
        for (long long j = lane; j < m; j += 32) {
            double v = widen(row[j * cs]);
            s = fma(v, v, s);
        }
        s = warp_sum(s);
        s = (s >= TINY_SQ && s <= HUGE_SQ) ? sqrt(s) : rescaled(row, m, cs, lane);
        if (lane == 0) out[i] = s;
    }
}

__device__ __forceinline__ double add_squares(double2 v, double s) {
    return fma(v.y, v.y, fma(v.x, v.x, s));
}
__device__ __forceinline__ double add_squares(float4 v, double s) {
    double a = widen(v.x), b = widen(v.y), c = widen(v.z), d = widen(v.w);
    return fma(d, d, fma(c, c, fma(b, b, fma(a, a, s))));
}

// Contiguous rows that start on 16-byte boundaries: 16-byte loads (double2 or
// float4, W elements each), and L lanes per row, so a warp takes 32/L rows at once:
// short rows then keep every lane loading.  A row that needs rescaling is redone
// by the whole warp (rare), so the shuffles inside rescaled() stay warp-wide.
template <typename T, typename V, int L>
__global__ void row_norms_vec(const T* __restrict__ x, long long n, long long m,
                              long long rs, double* __restrict__ out) {
    constexpr int W = sizeof(V) / sizeof(T);
    constexpr int ROWS = 32 / L;
    const int lane = threadIdx.x & 31, sub = lane % L, seg = lane / L;
    const long long mv = m / W;
    const long long step = (((long long)gridDim.x * blockDim.x) >> 5) * ROWS;
    for (long long base = (((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5) * ROWS;
         base < n; base += step) {
        const long long i = base + seg;
        const bool valid = i < n;
        double s = 0.0;
        if (valid) {
            const V* row = reinterpret_cast<const V*>(x + i * rs);
#pragma unroll 4
            for (long long k = sub; k < mv; k += L) s = add_squares(row[k], s);
            for (long long j = mv * W + sub; j < m; j += L) {
                double v = widen(x[i * rs + j]);
                s = fma(v, v, s);
            }
        }
        for (int o = L / 2; o > 0; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
        const bool bad = valid && !(s >= TINY_SQ && s <= HUGE_SQ);
        double norm = sqrt(s);
        if (__any_sync(FULL, bad)) {
            for (int q = 0; q < ROWS; ++q) {
                const double sq = __shfl_sync(FULL, s, q * L);
                if (base + q < n && !(sq >= TINY_SQ && sq <= HUGE_SQ)) {  // same in all lanes
                    const double t = rescaled(x + (base + q) * rs, m, 1, lane);
                    if (seg == q) norm = t;
                }
            }
        }
        if (valid && sub == 0) out[i] = norm;
    }
}
"""
_CUDA_BLOCK = 256
_LANES_PER_ROW = (32, 16, 8, 4)  # compiled variants of the 16-byte-load kernel


def _lanes(vectors_per_row: int) -> int:
    # About 6 loads per lane did best on an H200 for 100-column rows (float64: 8 lanes,
    # 1.07-1.21x the copy bound at 4 GB / 400 MB, against 1.34-1.44x for a warp a row;
    # float32: 4 lanes, 1.87x against 2.34x; 2026-11-26, the ratios
    # suites/compute/test_row_norms_bench.py::test_cuda_row_norms reports)
    lanes = 32
    while lanes > 4 and lanes * 6 > vectors_per_row:
        lanes //= 2
    return lanes


@functools.cache
def _cuda_kernels() -> dict[tuple[str, int], Any]:
    cp = require("cupy", "row_norms' cuda method")
    names = {}
    for dtype, ctype, vtype in (("float32", "float", "float4"), ("float64", "double", "double2")):
        names[(dtype, 0)] = f"row_norms<{ctype}>"
        for lanes in _LANES_PER_ROW:
            names[(dtype, lanes)] = f"row_norms_vec<{ctype}, {vtype}, {lanes}>"
    module = cp.RawModule(
        code=_CUDA_SOURCE, options=("-std=c++17",), name_expressions=list(names.values())
    )
    return {key: module.get_function(name) for key, name in names.items()}


def launch(xd: Any, out: Any, lanes: int | None = None) -> None:
    """Run the kernel on a 2-D float32/float64 CuPy array with rows and columns.

    Rows that are contiguous and start on 16-byte boundaries get the 16-byte-load
    kernel with ``lanes`` lanes per row; others (and ``lanes=0``) the general one.
    """
    cp = require("cupy", "row_norms' cuda method")
    n, m = xd.shape
    rs, cs = (stride // xd.itemsize for stride in xd.strides)
    aligned = cs == 1 and xd.data.ptr % 16 == 0 and (rs * xd.itemsize) % 16 == 0
    if not aligned:
        lanes = 0
    elif lanes is None:
        lanes = _lanes(m // (16 // xd.itemsize))
    rows_per_block = _CUDA_BLOCK // (lanes or 32)
    sms = cp.cuda.Device().attributes["MultiProcessorCount"]
    grid = max(1, min(-(-n // rows_per_block), sms * 64))
    kernel = _cuda_kernels()[(xd.dtype.name, lanes)]
    sizes = (np.int64(n), np.int64(m), np.int64(rs))
    args = (xd, *sizes, out) if lanes else (xd, *sizes, np.int64(cs), out)
    kernel((grid,), (_CUDA_BLOCK,), args)


def row_norms_cuda(x: Any) -> Any:
    """Row norms on the GPU; a CuPy array stays there, a NumPy one is copied over and back."""
    cp = require("cupy", "row_norms' cuda method")
    on_device = isinstance(x, cp.ndarray)
    if on_device:
        xd = x.astype(target_dtype(x.dtype, x.shape), copy=False)
    else:
        xd = cp.asarray(as_matrix(x))  # the host-to-device copy: time it apart
    n, m = xd.shape
    out = cp.empty(n, dtype=cp.float64) if m else cp.zeros(n, dtype=cp.float64)
    if n and m:
        launch(xd, out)
    return out if on_device else out.get()


@functools.cache
def ready() -> bool:
    """True when CuPy is installed and sees at least one CUDA device."""
    if not available("cupy"):
        return False
    try:
        return bool(require("cupy").cuda.runtime.getDeviceCount() > 0)
    except (ImportError, RuntimeError):  # no driver, no device: no GPU here
        return False

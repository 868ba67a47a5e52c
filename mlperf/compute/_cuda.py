"""The ``cuda`` method: a CuPy raw kernel (numba-cuda cannot compile on the GPU image)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from mlperf._optional import available, require
from mlperf.compute._cpu import as_matrix, target_dtype

# ------------------------------------------------------------------------- cuda
# One warp per row: lanes read consecutive columns (coalesced in C order), sum
# squares in float64 and reduce with shuffles.  A row whose sum left
# [TINY_SQ, HUGE_SQ] is redone like _finish_safe; the test is warp-uniform.

_CUDA_SOURCE = r"""
#define TINY_SQ 0x1p-900
#define HUGE_SQ 1.7976931348623157e308
#define FULL 0xffffffffu
__device__ double warp_sum(double s) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(FULL, s, o);
    return s;
}
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
            double v = (double)row[j * cs];
            s = fma(v, v, s);
        }
        s = warp_sum(s);
        if (s >= TINY_SQ && s <= HUGE_SQ) {
            s = sqrt(s);
        } else {
            double amax = 0.0;
            int has_nan = 0;
            for (long long j = lane; j < m; j += 32) {
                double v = fabs((double)row[j * cs]);
                if (v != v) has_nan = 1; else amax = fmax(amax, v);
            }
            for (int o = 16; o > 0; o >>= 1) amax = fmax(amax, __shfl_xor_sync(FULL, amax, o));
            if (__any_sync(FULL, has_nan)) {
                s = __longlong_as_double(0x7ff8000000000000LL);
            } else if (amax > HUGE_SQ || amax == 0.0) {  // inf, or all zeros
                s = amax;
            } else {
                int e;
                frexp(amax, &e);
                double t = 0.0;
                for (long long j = lane; j < m; j += 32) {
                    double v = ldexp((double)row[j * cs], -e);
                    t = fma(v, v, t);
                }
                s = ldexp(sqrt(warp_sum(t)), e);
            }
        }
        if (lane == 0) out[i] = s;
    }
}
"""
_CUDA_BLOCK = 256


@functools.cache
def _cuda_kernels() -> dict[str, Any]:
    cp = require("cupy", "row_norms' cuda method")
    names = {"float32": "row_norms<float>", "float64": "row_norms<double>"}
    module = cp.RawModule(
        code=_CUDA_SOURCE, options=("-std=c++17",), name_expressions=list(names.values())
    )
    return {dtype: module.get_function(name) for dtype, name in names.items()}


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
        sms = cp.cuda.Device().attributes["MultiProcessorCount"]
        grid = max(1, min(-(-n * 32 // _CUDA_BLOCK), sms * 64))
        rs, cs = (stride // xd.itemsize for stride in xd.strides)
        kernel = _cuda_kernels()[xd.dtype.name]
        kernel(
            (grid,), (_CUDA_BLOCK,), (xd, np.int64(n), np.int64(m), np.int64(rs), np.int64(cs), out)
        )
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

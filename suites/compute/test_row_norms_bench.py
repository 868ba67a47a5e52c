"""Benchmarks of every row-norm method against the memory bound measured in the same run.

CPU: each method at 10000 x 100 float64 (8 MB, fits the 32 MB L3) and, with
``--mlperf-slow``, at 500000 x 100 (400 MB, DRAM).  numba compiles and the process
pool starts in an untimed warm-up call.  The bound is a read-only pass over the same
array (:func:`mlperf.compute.read_probe`), timed in alternation with the method on
process CPU time (wall time for ``parallel``, whose work is in other processes), so
that the load of a shared machine hits both alike; the multiple is the ratio of
the two medians.

GPU (marker ``mlperf_gpu``): the ``cuda`` kernel on data already on the device, against a
device-to-device copy of the same array: a copy reads and writes every byte, so
reading alone at that bandwidth takes half its time.  Host-to-device copies are
timed apart: they cost far more than the kernel.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from compute_tutorial import parallel_calculation

from mlperf._optional import install_hint, require
from mlperf.compute import METHODS, read_bound, read_probe, row_norms
from mlperf.data import make_matrix

REFERENCE = "safe" if METHODS["safe"].available() else "safe_numpy"


def _param(name: str) -> Any:
    marks = []
    if name == "parallel":  # the work runs in worker processes: gate on wall time
        marks.append(pytest.mark.mlperf(metric="wall"))
    else:  # one process's CPU work: also gated on its instruction count (make bench)
        marks.append(pytest.mark.mlperf(metric="instructions"))
    method = METHODS[name]
    if not method.available():
        reason = f"{name} needs {method.requires!r}: {install_hint(str(method.requires))}"
        marks.append(pytest.mark.skip(reason=reason))
    return pytest.param(name, marks=marks)


def _interleaved(
    work: Callable[[], object], probe: Callable[[], object], pairs: int, clock: str
) -> tuple[float, float]:
    """Median seconds of ``work`` and of ``probe``, timed alternately on one clock.

    Each round times ``work`` once and then the probe at least once (51 probes in
    all), each timed probe after an untimed one: it then finds the array as warm in
    the cache as ``work`` (which follows a probe) does, whatever ``work`` evicted.
    """
    timer = time.process_time if clock == "cpu" else time.perf_counter
    works: list[float] = []
    probes: list[float] = []
    for _ in range(pairs):
        start = timer()
        work()
        works.append(timer() - start)
        for _ in range(max(1, 51 // pairs)):
            probe()
            start = timer()
            probe()
            probes.append(timer() - start)
    return statistics.median(works), statistics.median(probes)


def _bench(benchmark: Any, report: Any, x: np.ndarray, method: str, size: str) -> None:
    want = row_norms(x, REFERENCE)
    if method != "python":
        row_norms(x, method)  # compile / start the pool here, never inside a timed round
    if method == "python":  # ~0.15-0.7 s a call: three rounds say enough
        got = benchmark.pedantic(row_norms, args=(x, method), rounds=3, iterations=1)
    else:
        got = benchmark(row_norms, x, method)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if benchmark.enabled:
        clock = "wall" if method == "parallel" else "cpu"
        pairs = 3 if method == "python" else 51 if x.nbytes < 64 << 20 else 7
        work = functools.partial(row_norms, x, method)
        median, bound = _interleaved(work, read_probe(x), pairs, clock)
        report.record(benchmark, size, method, bound, median_s=median, clock=clock)


@pytest.mark.parametrize("method", [_param(m) for m in METHODS])
def test_row_norms_10k(
    benchmark: Any, method: str, matrix_10k: np.ndarray, compute_report: Any
) -> None:
    _bench(benchmark, compute_report, matrix_10k, method, "10000x100")


@pytest.mark.mlperf(metric="wall")
def test_tutorial_parallel_pool_per_call_10k(
    benchmark: Any, matrix_10k: np.ndarray, compute_report: Any
) -> None:
    """The tutorial's Pool(4), created and torn down on every call."""
    want = row_norms(matrix_10k, REFERENCE)
    got = benchmark.pedantic(parallel_calculation, args=(matrix_10k,), rounds=5, iterations=1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if benchmark.enabled:  # its median is pytest-benchmark's (wall), like the bound's here
        bound = read_bound(matrix_10k, clock="wall")
        compute_report.record(benchmark, "10000x100", "tutorial_parallel", bound, clock="wall")


@pytest.mark.mlperf_slow
@pytest.mark.parametrize("method", [_param(m) for m in METHODS if m != "python"])  # ~7 s a call
def test_row_norms_400mb(
    benchmark: Any, method: str, matrix_400mb: np.ndarray, compute_report: Any
) -> None:
    _bench(benchmark, compute_report, matrix_400mb, method, "500000x100 (400 MB)")


# --------------------------------------------------------------------------- GPU


def _device_median(cp: Any, fn: Callable[[], Any], reps: int = 30) -> float:
    """Median seconds of ``fn`` between two CUDA events (launch included)."""
    fn()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(times)


def _host_median(cp: Any, fn: Callable[[], Any], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        cp.cuda.get_current_stream().synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.mlperf_gpu
@pytest.mark.mlperf(metric="wall")
@pytest.mark.parametrize("rows", [10_000, 500_000], ids=["10000x100", "500000x100-400MB"])
def test_cuda_row_norms(benchmark: Any, rows: int, compute_report: Any) -> None:
    cp = require("cupy", "the cuda benchmark")
    host = make_matrix(rows, 100)
    xd = cp.asarray(host)
    want = row_norms(host, "safe_numpy")

    def call() -> Any:
        out = row_norms(xd, "cuda")
        cp.cuda.get_current_stream().synchronize()
        return out

    call()  # NVRTC compiles the kernel here
    got = benchmark(call).get()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-12)
    if not benchmark.enabled:
        return
    kernel_s = _device_median(cp, lambda: row_norms(xd, "cuda"))
    scratch = cp.empty_like(xd)
    copy_s = _device_median(cp, lambda: cp.copyto(scratch, xd))
    builtin_s = _device_median(cp, lambda: cp.sqrt((xd * xd).sum(axis=1)))
    pinned = require("cupyx").empty_pinned(host.shape, host.dtype)
    pinned[...] = host
    h2d_s = _host_median(cp, lambda: cp.asarray(host))
    h2d_pinned_s = _host_median(cp, lambda: scratch.set(pinned))
    name = cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    compute_report.record(
        benchmark,
        f"{rows}x100",
        "cuda",
        copy_s / 2,  # a copy moves 2 x nbytes; one read of nbytes at that rate takes half
        device=name,
        median_s=kernel_s,
        clock="cuda events",
        copy_gbps=2 * host.nbytes / copy_s / 1e9,
        kernel_gbps=host.nbytes / kernel_s / 1e9,
        cupy_builtin_ms=builtin_s * 1e3,
        cupy_builtin_x_bound=builtin_s / (copy_s / 2),
        h2d_pageable_ms=h2d_s * 1e3,
        h2d_pinned_ms=h2d_pinned_s * 1e3,
        host_call_ms=float(benchmark.stats.stats.median) * 1e3,
    )

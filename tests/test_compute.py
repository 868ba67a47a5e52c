"""Tests of mlperf.compute itself: input checks, registry, auto, numba set-up, the pool."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlperf._optional import MissingDependency
from mlperf.compute import (
    METHODS,
    _cpu,
    _cuda,
    _pool,
    methods,
    read_bound,
    row_norms,
    shutdown_pool,
)

CPU = list(METHODS)
NEEDS_NUMBA = pytest.mark.skipif(
    not METHODS["safe"].available(),
    reason='numba does not import: pip install "pytest-mlperf[compute]"',
)


def hypot_rows(x: Any) -> np.ndarray:
    return np.array([math.hypot(*(float(v) for v in row)) for row in np.asarray(x)])


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"} | env
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        check=False,
    )


def test_importing_compute_loads_no_heavy_package() -> None:
    proc = run_python(
        """
        import sys, mlperf.compute
        heavy = ("numba", "cupy", "matplotlib", "concurrent.futures.process")
        print([m for m in heavy if m in sys.modules])
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------ input checks

BAD_INPUT = [
    (np.ones(3), ValueError, "got shape (3,)"),
    (np.ones((2, 2, 2)), ValueError, "got shape (2, 2, 2)"),
    (np.float64(1.0), ValueError, "got shape ()"),
    (np.ones((2, 2), dtype=bool), TypeError, "dtype('bool')"),
    (np.ones((2, 2), dtype=complex), TypeError, "dtype('complex128')"),
    (np.array([["a", "b"]]), TypeError, "dtype('<U1')"),
    (np.array([[1, None]], dtype=object), TypeError, "dtype('O')"),
    (np.ones((2, 2), dtype=np.longdouble), TypeError, repr(np.dtype(np.longdouble))),
    (np.zeros((2, 2), dtype="datetime64[s]"), TypeError, "dtype('<M8[s]')"),
]


@pytest.mark.parametrize("method", ["auto", *CPU])
@pytest.mark.parametrize(("x", "error", "names"), BAD_INPUT, ids=[repr(b[2]) for b in BAD_INPUT])
def test_bad_input_is_refused_naming_the_value(
    method: str, x: Any, error: type, names: str
) -> None:
    if np.dtype(np.longdouble) == np.float64 and "float" in names:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(error, match=re.escape(names)) as info:
        row_norms(x, method)
    assert "row_norms:" in str(info.value) and (
        "pass" in str(info.value) or "convert" in str(info.value)
    )


@pytest.mark.parametrize("method", ["auto", *CPU])
@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i4", ">u8"])
def test_big_endian_input_gives_the_native_answer(method: str, dtype: str) -> None:
    native = np.array([[3, 4], [5, 12], [0, 0]], dtype=np.dtype(dtype).newbyteorder("="))
    swapped = native.astype(dtype)
    assert swapped.dtype.byteorder == ">" and not swapped.dtype.isnative
    np.testing.assert_array_equal(row_norms(swapped, method), [5.0, 13.0, 0.0])
    np.testing.assert_array_equal(row_norms(np.asfortranarray(swapped), method), [5.0, 13.0, 0.0])


@pytest.mark.parametrize("method", ["auto", *CPU])
def test_a_masked_array_is_refused_unless_nothing_is_masked(method: str) -> None:
    x = np.ma.masked_array([[3.0, 4.0], [1e300, 1.0]], mask=[[False, False], [True, False]])
    with pytest.raises(ValueError, match=r"1 masked value.*x\.filled\(0\.0\)") as info:
        row_norms(x, method)
    assert "row_norms:" in str(info.value)
    clear = np.ma.masked_array([[3.0, 4.0]], mask=False)
    assert row_norms(clear, method).tolist() == [5.0]


def test_unknown_method_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'fast'.*'auto'.*safe_numpy"):
        row_norms(np.ones((2, 2)), "fast")


def test_array_likes_are_accepted() -> None:
    assert row_norms([[3, 4], [5, 12]]).tolist() == [5.0, 13.0]
    frame = pd.DataFrame({"a": [3.0, 6.0], "b": [4.0, 8.0]})
    assert row_norms(frame, "safe_numpy").tolist() == [5.0, 10.0]


@pytest.mark.parametrize("method", CPU)
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0)])
def test_zero_rows_or_columns(method: str, shape: tuple[int, int]) -> None:
    out = row_norms(np.ones(shape), method)
    assert out.dtype == np.float64 and out.shape == (shape[0],) and (out == 0).all()


@pytest.mark.parametrize("method", CPU)
@pytest.mark.parametrize(
    "dtype", [np.int8, np.int64, np.uint16, np.float16, np.float32, np.float64]
)
def test_every_numeric_dtype_gives_float64_norms(method: str, dtype: Any) -> None:
    x = np.arange(-6, 6).reshape(3, 4).astype(dtype)
    before = x.copy()
    out = row_norms(x, method)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, hypot_rows(x), rtol=1e-12)
    np.testing.assert_array_equal(x, before)  # input untouched


@pytest.mark.parametrize("method", CPU)
def test_memory_order_and_strides_do_not_change_the_answer(method: str) -> None:
    base = np.random.default_rng(7).standard_normal((60, 14))
    views = {
        "C": base,
        "F": np.asfortranarray(base),
        "strided": base[::2, ::3],
        "reversed": base[::-1, ::-1],
        "float32 F": np.asfortranarray(base.astype(np.float32)),
        "one column": base[:, :1],
        "transposed view": base.T,
    }
    for label, x in views.items():
        np.testing.assert_allclose(row_norms(x, method), hypot_rows(x), rtol=1e-12, err_msg=label)


# ------------------------------------------------------------------ auto, registry


def test_every_method_says_what_it_is() -> None:
    for name, method in METHODS.items():
        assert method.name == name and method.summary and method.device == "cpu"
    assert {m for m in METHODS if METHODS[m].tutorial} == {"python", "numba", "vectorized"}
    assert {m for m in METHODS if METHODS[m].safe} == {"parallel", "safe", "safe_numpy"}


@pytest.mark.parametrize("value", [1e200, 1e-200, 5e-324, 1.7e308])
def test_auto_is_right_where_the_plain_sum_of_squares_is_not(value: float) -> None:
    x = np.full((3, 50), value)
    x[1, :] = 1.0
    got = row_norms(x, "auto")
    want = hypot_rows(x)
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=2.0**-1070)


def test_auto_without_numba_uses_numpy_and_never_touches_numba(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_numba() -> None:
        raise AssertionError("auto must not compile numba kernels when numba is unusable")

    monkeypatch.setattr(_cpu, "usable", lambda module: module != "numba")
    monkeypatch.setattr(_cpu, "kernels", no_numba)
    x = np.array([[1e200, 1e200], [3.0, 4.0], [1e-200, 0.0]])
    np.testing.assert_allclose(row_norms(x), [math.sqrt(2) * 1e200, 5.0, 1e-200], rtol=1e-15)
    with pytest.raises(MissingDependency, match=re.escape('pip install "pytest-mlperf[compute]"')):
        row_norms(x, "numba")


def test_cuda_is_registered_only_with_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_cuda, "ready", lambda: False)
    assert "cuda" not in methods()
    with pytest.raises(ValueError, match=r"'cuda' needs CuPy and a CUDA device"):
        row_norms(np.ones((2, 2)), "cuda")
    monkeypatch.setattr(_cuda, "ready", lambda: True)
    cuda = methods()["cuda"]
    assert cuda.device == "cuda" and cuda.safe and cuda.requires == "cupy"
    assert "cuda" not in METHODS


def test_a_cupy_array_only_goes_to_cuda() -> None:
    fake = type("ndarray", (), {"__module__": "cupy._core.core"})()
    with pytest.raises(ValueError, match=r"a CuPy array needs method 'cuda' or 'auto'; got 'safe'"):
        row_norms(fake, "safe")


def test_cuda_kernel_uses_the_same_rescaling_thresholds_as_the_cpu() -> None:
    tiny = re.search(r"#define TINY_SQ (\S+)", _cuda._CUDA_SOURCE)
    huge = re.search(r"#define HUGE_SQ (\S+)", _cuda._CUDA_SOURCE)
    assert tiny and float.fromhex(tiny.group(1)) == _cpu.TINY_SQ
    assert huge and float(huge.group(1)) == _cpu.HUGE_SQ


# ------------------------------------------------------------------------- numba


@NEEDS_NUMBA
def test_numba_adds_in_the_python_loops_order_bit_for_bit() -> None:
    x = np.random.default_rng(11).standard_normal((300, 57)) * np.logspace(-3, 3, 57)
    for view in (x, np.asfortranarray(x), x[::3, ::2], x.astype(np.float32)):
        np.testing.assert_array_equal(row_norms(view, "numba"), row_norms(view, "python"))


@NEEDS_NUMBA
def test_numba_kernels_never_assume_finite_math() -> None:
    kernels = _cpu.kernels()
    for name in ("rows_fast", "cols_fast", "read_sum"):
        flags = getattr(kernels, name).targetoptions["fastmath"]
        assert "reassoc" in flags and not {"nnan", "ninf", "fast"} & set(flags), (name, flags)
    for name in ("tutorial", "finish_safe"):
        assert not getattr(kernels, name).targetoptions.get("fastmath"), name
    assert all(
        getattr(kernels, k)._cache.__class__.__name__ == "FunctionCache" for k in vars(kernels)
    )


@NEEDS_NUMBA
@pytest.mark.parametrize(
    ("env", "layer"), [({}, "workqueue"), ({"NUMBA_THREADING_LAYER": "omp"}, "omp")]
)
def test_numba_threading_layer_is_workqueue_unless_chosen(env: dict[str, str], layer: str) -> None:
    proc = run_python(
        """
        import numba, numpy as np, mlperf.compute as c  # numba imported first, on purpose
        c.row_norms(np.ones((2, 2)), "safe")
        print(numba.config.THREADING_LAYER)
        """,
        **env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == layer


# -------------------------------------------------------------------------- pool


@pytest.fixture
def fresh_pool() -> Any:
    shutdown_pool()
    yield
    shutdown_pool()


def _workers() -> set[int]:
    assert _pool._POOL is not None
    return set(_pool._POOL.executor._processes)


def test_the_pool_is_created_once_and_reused(fresh_pool: None) -> None:
    x = np.random.default_rng(1).standard_normal((1000, 20))
    first = row_norms(x, "parallel")
    pool, workers = _pool._POOL, _workers()
    for rows in (1000, 3, 1, 2000):  # fewer rows than workers, then a bigger block
        np.testing.assert_allclose(
            row_norms(x[:rows], "parallel"), hypot_rows(x[:rows]), rtol=1e-12
        )
    assert _pool._POOL is pool and _workers() == workers
    np.testing.assert_allclose(first, hypot_rows(x), rtol=1e-12)


def test_shutdown_stops_the_workers_and_frees_shared_memory(fresh_pool: None) -> None:
    row_norms(np.ones((100, 4)), "parallel")
    assert _pool._POOL is not None
    workers, blocks = _workers(), [shm.name for shm in _pool._POOL.blocks.values()]
    shutdown_pool()
    assert _pool._POOL is None
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for name in blocks:
        assert not os.path.exists(f"/dev/shm/{name.lstrip('/')}"), name
    np.testing.assert_allclose(row_norms(np.ones((5, 4)), "parallel"), 2.0)  # a new pool


def test_a_dead_worker_gives_a_clear_error_and_a_new_pool(fresh_pool: None) -> None:
    row_norms(np.ones((10, 4)), "parallel")
    os.kill(next(iter(_workers())), signal.SIGKILL)
    deadline = time.monotonic() + 30  # the executor's manager thread notices, in its time
    with pytest.raises(RuntimeError, match=r"worker process died.*__main__"):
        while time.monotonic() < deadline:
            row_norms(np.ones((10, 4)), "parallel")
            time.sleep(0.01)
    np.testing.assert_allclose(row_norms(np.ones((10, 4)), "parallel"), 2.0)


def test_parallel_is_safe_from_several_threads(fresh_pool: None) -> None:
    arrays = [np.full((200 + 50 * k, 9), float(k + 1)) for k in range(4)]
    results: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        results[k] = row_norms(arrays[k], "parallel")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, _x in enumerate(arrays):
        np.testing.assert_allclose(results[k], 3.0 * (k + 1), rtol=1e-12)


def test_a_script_exits_cleanly_without_calling_shutdown() -> None:
    proc = run_python(
        """
        import numpy as np
        from mlperf.compute import row_norms
        if __name__ == "__main__":
            print(row_norms(np.ones((4, 9)), "parallel").tolist())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[3.0, 3.0, 3.0, 3.0]"
    assert "leaked" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("clock", ["wall", "cpu"])
@pytest.mark.parametrize("order", ["C", "F", "view"])
def test_read_bound_is_a_positive_time(order: str, clock: str) -> None:
    x = np.ones((300, 40), order="F" if order == "F" else "C")
    seconds = read_bound(x[::2] if order == "view" else x, repeat=5, clock=clock)
    assert 0 <= seconds < 1
    with pytest.raises(ValueError, match="clock must be 'wall' or 'cpu'; got 'gpu'"):
        read_bound(x, clock="gpu")


# --------------------------------------------------------------------------- GPU


@pytest.mark.mlperf_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_cuda_on_device_arrays_in_any_layout(dtype: Any) -> None:
    cp = pytest.importorskip("cupy")
    host = np.random.default_rng(3).standard_normal((301, 68)) * 10
    host[0, :] = 1e200 if dtype == np.float64 else 1.0
    host[1, :] = 1e-200 if dtype == np.float64 else 0.0
    host[2, :] = 1e-45  # a float32 subnormal (CuPy compiles with -ftz=true)
    host = host.astype(dtype)
    for label, view in {  # 68 columns: rows start on 16-byte boundaries (16-byte loads)
        "C": lambda a: a,
        "aligned with a tail": lambda a: a[:, :67],
        "unaligned": lambda a: a[:, 1:],
        "F": lambda a: a.copy(order="F"),
        "strided": lambda a: a[::2, ::3],
        "reversed": lambda a: a[::-1, ::-1],
    }.items():
        want = row_norms(view(host), "safe_numpy")
        got = row_norms(view(cp.asarray(host)), "auto")
        assert isinstance(got, cp.ndarray), label
        np.testing.assert_allclose(got.get(), want, rtol=1e-12, err_msg=label)
        np.testing.assert_allclose(row_norms(view(host), "cuda"), want, rtol=1e-12, err_msg=label)


@pytest.mark.mlperf_gpu
def test_cuda_edge_shapes_and_refusals() -> None:
    cp = pytest.importorskip("cupy")
    for shape in [(0, 5), (5, 0), (0, 0)]:
        out = row_norms(cp.ones(shape), "cuda")
        assert out.shape == (shape[0],) and out.dtype == cp.float64 and not out.any()
    with pytest.raises(TypeError, match=re.escape("dtype('bool')")):
        row_norms(cp.ones((2, 2), dtype=bool), "cuda")
    with pytest.raises(ValueError, match=re.escape("got shape (3,)")):
        row_norms(cp.ones(3), "cuda")


@pytest.mark.mlperf_gpu
@pytest.mark.parametrize("lanes", [0, *_cuda._LANES_PER_ROW])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_cuda_kernel_variant_rescales_and_propagates(lanes: int, dtype: Any) -> None:
    cp = pytest.importorskip("cupy")
    host = np.random.default_rng(5).standard_normal((203, 36)).astype(dtype)
    big, small = (1e200, 1e-200) if dtype == np.float64 else (3e38, 1e-45)
    host[3], host[7, 5], host[8, :9] = big, small, small  # rows to rescale, in mid-warp
    host[11, 2], host[12, 4], host[13, [1, 30]] = np.nan, np.inf, (np.inf, np.nan)
    host[100:104] = 0.0
    device = cp.asarray(host)
    for x in (device, device[:, :35]):  # rows of whole 16-byte vectors, then with a tail
        out = cp.empty(x.shape[0])
        _cuda.launch(x, out, lanes)
        want = row_norms(x.get(), "safe_numpy")
        np.testing.assert_array_equal(np.isnan(out.get()), np.isnan(want))
        np.testing.assert_allclose(out.get(), want, rtol=1e-12, atol=2.0**-1070)

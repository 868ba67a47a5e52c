"""Properties of every row-norm method, and the tutorial's bugs they rule out.

Each method is checked against an independent truth, never against another method
alone: ``safe`` against ``math.hypot`` row by row, every other method against
``safe``.  Finiteness is asserted explicitly, because ``np.allclose(inf, inf)`` is
True -- which is how the tutorial's own checks passed on wrong answers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from compute_tutorial import parallel_chunks, slow_calculation, vectorized_calculation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlperf.compute import METHODS, row_norms

#: every method; cuda runs only where the plugin finds a GPU (marker ``mlperf_gpu``)
ALL = [*METHODS, pytest.param("cuda", marks=pytest.mark.mlperf_gpu)]
SAFE = [m for m in METHODS if METHODS[m].safe] + [
    pytest.param("cuda", marks=pytest.mark.mlperf_gpu)
]
#: the reference the other methods must match; safe_numpy where numba does not import
REFERENCE = "safe" if METHODS["safe"].available() else "safe_numpy"
#: float32 input is widened exactly and summed in float64 like float64 input, so
#: both get the float64 tolerance: about 12 columns x 2**-53 of rounding, 1e-12 leaves room
RTOL = 1e-12
#: results in the subnormal range carry absolute, not relative, rounding
ATOL_SUBNORMAL = 2.0**-1070
PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _float(
    dtype: Any, lo: float | None = None, hi: float | None = None
) -> st.SearchStrategy[float]:
    width = 32 if dtype == np.float32 else 64
    return st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False)


def in_range(dtype: Any) -> st.SearchStrategy[float]:
    """Values whose squares neither overflow nor underflow in float64.

    Any finite float32 qualifies (float32 max squared is 1.2e77); float64 needs
    1e-150 <= |v| <= 1e150, or 0.
    """
    if dtype == np.float32:
        return _float(dtype)
    return st.one_of(st.just(0.0), _float(dtype, 1e-150, 1e150), _float(dtype, -1e150, -1e-150))


def any_finite(dtype: Any) -> st.SearchStrategy[float]:
    """Every finite value, with the extremes (1e+-200, subnormals, near-max) drawn often."""
    extremes = [1e200, -1e200, 1e-200, 5e-324, 2.2e-308, 1.7e308, -1.7e308, 1e-160]
    if dtype == np.float32:
        extremes = [3.4e38, -3.4e38, 1.4e-45, 1e-38, 1e20]
    return st.one_of(_float(dtype), st.sampled_from(extremes))


def with_non_finite(dtype: Any) -> st.SearchStrategy[float]:
    return st.one_of(in_range(dtype), st.sampled_from([math.nan, math.inf, -math.inf]))


@st.composite
def matrices(draw: st.DrawFn, elements: Any, max_side: int = 12) -> np.ndarray:
    """A float32 or float64 matrix (0 rows or columns included), little- or big-endian,
    in C order, Fortran order, or as a strided, column-reversed view."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=max_side))
    x = draw(hnp.arrays(dtype, shape, elements=elements(dtype)))
    if draw(st.booleans()):  # '>f8' data, as read from a big-endian file
        x = x.astype(x.dtype.newbyteorder(">"))
    layout = draw(st.sampled_from(["C", "F", "view"]))
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "view":
        return np.repeat(np.repeat(x, 2, axis=0), 2, axis=1)[::2, ::-2]
    return x


def norms(x: np.ndarray, method: str) -> np.ndarray:
    with np.errstate(all="ignore"):  # numpy's own methods warn on inf/NaN; answers are checked
        out = row_norms(x, method)
    if not isinstance(out, np.ndarray):  # cuda with a device array hands one back
        out = out.get()
    assert out.dtype == np.float64 and out.shape == (x.shape[0],), (out.dtype, out.shape)
    return out


def hypot_rows(x: np.ndarray) -> np.ndarray:
    return np.array([math.hypot(*(float(v) for v in row)) for row in x], dtype=np.float64)


@pytest.mark.parametrize("method", ALL)
@PROPERTY
@given(x=matrices(in_range))
def test_every_method_equals_safe_where_no_square_leaves_the_range(
    method: str, x: np.ndarray
) -> None:
    got, want = norms(x, method), norms(x, REFERENCE)
    assert np.isfinite(got).all(), f"{method} gave {got} for in-range input"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)


@pytest.mark.parametrize("method", SAFE)
@PROPERTY
@given(x=matrices(any_finite))
def test_safe_methods_equal_math_hypot_for_every_finite_input(method: str, x: np.ndarray) -> None:
    got, want = norms(x, method), hypot_rows(x)
    # hypot overflows only where the norm itself exceeds DBL_MAX; everywhere else the
    # answer is finite, and a method that says inf there is wrong
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL_SUBNORMAL)


@pytest.mark.parametrize("method", ALL)
@PROPERTY
@given(x=matrices(with_non_finite))
def test_nan_and_inf_propagate_the_same_way_in_every_method(method: str, x: np.ndarray) -> None:
    got = norms(x, method)
    nan_rows = np.isnan(x).any(axis=1)
    inf_rows = ~nan_rows & np.isinf(x).any(axis=1)  # NaN wins over inf, in every method
    np.testing.assert_array_equal(np.isnan(got), nan_rows)
    np.testing.assert_array_equal(np.isposinf(got), inf_rows)
    finite = ~(nan_rows | inf_rows)
    assert np.isfinite(got[finite]).all()
    np.testing.assert_allclose(got[finite], norms(x[finite], REFERENCE), rtol=RTOL, atol=0)


# ------------------------------------------------------------ the tutorial's code


@pytest.mark.parametrize(("value", "truth"), [(1e200, 1e201), (1e-200, 1e-199)])
def test_tutorial_checks_pass_on_wrong_answers_that_safe_gets_right(
    value: float, truth: float
) -> None:
    data = np.full((4, 100), value)
    with np.errstate(all="ignore"):
        slow, vectorized = slow_calculation(data), vectorized_calculation(data)
        compiled = row_norms(data, "numba")  # the tutorial's loop under @njit
    assert np.allclose(slow, compiled) and np.allclose(compiled, vectorized)  # its checks pass
    assert (slow == np.inf).all() if value > 1 else (slow == 0).all()  # on wrong answers
    right = row_norms(data, "auto")
    assert np.isfinite(right).all() and (right > 0).all()
    np.testing.assert_allclose(right, truth, rtol=RTOL)
    with pytest.raises(AssertionError):  # the check used here is not fooled
        np.testing.assert_allclose(vectorized, right, rtol=RTOL)


def test_tutorial_vectorized_overflows_float32_where_row_norms_does_not() -> None:
    data = np.full((3, 100), 1e20, dtype=np.float32)  # norm 1e21 fits float32 easily
    with np.errstate(over="ignore"):
        assert np.isinf(vectorized_calculation(data)).all()  # squared in float32
    for method in METHODS:
        np.testing.assert_allclose(
            norms(data, method), 1e21, rtol=1e-6
        )  # float32 input's precision


def test_tutorial_parallel_cannot_split_fewer_rows_than_processes() -> None:
    with pytest.raises(ValueError, match="must not be zero"):
        parallel_chunks(np.ones((3, 5)))  # chunk_size 0: range(0, 3, 0)
    np.testing.assert_allclose(row_norms(np.ones((3, 5)), "parallel"), math.sqrt(5))

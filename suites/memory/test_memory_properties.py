"""Properties of optimize_dtypes and chunked_agg on generated frames (hypothesis.extra.pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes
from pandas.testing import assert_frame_equal

from mlperf.io.chunked import chunked_agg
from mlperf.memory import footprint, optimize_dtypes

_NUMPY = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
    "bool": np.bool_,
    "datetime": np.dtype("datetime64[ns]"),
}
_SPECIAL = ("Int64", "Float64", "str", "object", "category", "exact-floats", "few-texts")
_WORDS = st.sampled_from(["東京", "大阪", "名古屋", "", "a"])


def _column(kind: str) -> column:
    if kind in _NUMPY:
        return column(dtype=_NUMPY[kind])
    if kind == "exact-floats":  # float64 values that float32 holds exactly
        return column(
            elements=st.sampled_from([0.0, -0.0, 0.5, 1.0, -2.25, 1e10, np.nan]), dtype=float
        )
    if kind == "few-texts":  # low cardinality: becomes category
        return column(elements=st.one_of(st.none(), _WORDS), dtype=object)
    if kind in ("Int64", "Float64"):
        return column(elements=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), dtype=object)
    return column(elements=st.one_of(st.none(), st.text(max_size=4)), dtype=object)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    kinds = draw(st.lists(st.sampled_from((*_NUMPY, *_SPECIAL)), min_size=1, max_size=6))
    df = draw(data_frames([_column(k) for k in kinds], index=range_indexes(max_size=30)))
    for i, kind in enumerate(kinds):
        col = df.iloc[:, i]
        if kind == "Int64":
            df.isetitem(i, col.astype("Int64"))
        elif kind == "Float64":
            df.isetitem(i, col.astype("Float64") / 7)
        elif kind == "str":
            df.isetitem(i, col.astype("str"))
        elif kind == "category":
            df.isetitem(i, col.astype("category"))
    # duplicate names on purpose: optimize_dtypes must address columns by position
    names = draw(
        st.lists(st.sampled_from(["a", "b", "東京"]), min_size=len(kinds), max_size=len(kinds))
    )
    df.columns = names
    return df


def assert_same_values(before: pd.DataFrame, after: pd.DataFrame) -> None:
    """Value for value equal: the same missing cells, and the other cells ==."""
    decoded = after.copy()
    for i in range(after.shape[1]):
        if isinstance(after.dtypes.iloc[i], pd.CategoricalDtype) and not isinstance(
            before.dtypes.iloc[i], pd.CategoricalDtype
        ):
            decoded.isetitem(i, after.iloc[:, i].astype(before.dtypes.iloc[i]))
    assert_frame_equal(decoded, before, check_dtype=False, check_exact=True)
    for i in range(before.shape[1]):
        a, b = before.iloc[:, i], after.iloc[:, i]
        missing = a.isna().to_numpy()
        np.testing.assert_array_equal(missing, b.isna().to_numpy())
        left, right = a.to_numpy(object)[~missing], b.to_numpy(object)[~missing]
        assert all(x == y for x, y in zip(left, right, strict=True)), (
            before.columns[i],
            left,
            right,
        )
        if a.dtype.kind == "f" if isinstance(a.dtype, np.dtype) else False:
            # -0.0 == 0.0, so compare signs too
            np.testing.assert_array_equal(
                np.signbit(a.to_numpy(float)), np.signbit(b.to_numpy(float))
            )


@settings(max_examples=40, deadline=None)
@given(df=frames())
def test_lossless_mode_keeps_every_value(df: pd.DataFrame) -> None:
    snapshot = df.copy()
    out, report = optimize_dtypes(df, return_report=True)
    assert_frame_equal(df, snapshot)  # the input is untouched
    assert_same_values(df, out)
    assert list(out.columns) == list(df.columns)
    assert footprint(out) <= footprint(df)
    assert not report["lossy"].any()
    assert (report["bytes_after"] <= report["bytes_before"]).all()
    for i in range(out.shape[1]):  # a str object's deep size grows once its UTF-8 is cached
        if not pd.api.types.is_object_dtype(out.dtypes.iloc[i]):
            assert report.at[i, "bytes_after"] == out.iloc[:, i].memory_usage(
                deep=True, index=False
            )


@settings(max_examples=30, deadline=None)
@given(df=frames())
def test_inplace_gives_the_same_frame(df: pd.DataFrame) -> None:
    expected = optimize_dtypes(df, floats="float32")
    target = df.copy()
    out = optimize_dtypes(target, floats="float32", inplace=True)
    assert out is target
    assert_frame_equal(out, expected, check_exact=True)


_F32 = np.finfo(np.float32)


@settings(max_examples=40, deadline=None)
@given(
    data_frames(
        [column("x", dtype=float), column("y", elements=st.floats(-1e30, 1e30), dtype=float)],
        index=range_indexes(max_size=40),
    )
)
def test_float32_mode_is_bounded_or_kept(df: pd.DataFrame) -> None:
    out, report = optimize_dtypes(df, floats="float32", return_report=True)
    if not len(df):  # nothing to gain: kept
        assert_frame_equal(out, df)
        return
    for i, name in enumerate(df.columns):
        x, y = df[name].to_numpy(), out[name].to_numpy().astype(np.float64)
        finite = np.isfinite(x) & (x != 0)
        with np.errstate(over="ignore", under="ignore"):
            exact = x.astype(np.float32).astype(np.float64) == x
        # outside float32's normal range and not exactly representable there (an exact subnormal,
        # e.g. 2**-149, converts losslessly and so may be converted)
        outside = finite & ~exact & ((np.abs(x) > _F32.max) | (np.abs(x) < _F32.smallest_normal))
        if outside.any():  # left alone, and the report says why
            assert out[name].dtype == np.float64
            assert "outside the float32 range" in report.at[i, "note"]
            continue
        assert out[name].dtype == np.float32
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y))
        rel = np.abs(y[finite] - x[finite]) / np.abs(x[finite])
        assert (rel <= 2.0**-24).all()
        assert bool(report.at[i, "lossy"]) == bool((y[finite] != x[finite]).any())


# ------------------------------------------------------------------ chunked_agg

_AGGS = {
    "x": ["count", "sum", "mean", "min", "max", "var", "std"],
    "n": ["sum", "mean", "min", "std"],
}
_VALUES = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=30, deadline=None)
@given(
    df=data_frames(
        [
            column("k", elements=st.one_of(st.none(), st.sampled_from(["東京", "大阪", "名古屋"]))),
            column("j", elements=st.integers(0, 2)),
            column("x", elements=st.one_of(_VALUES, st.just(np.nan)), dtype=float),
            column("n", elements=st.integers(-(2**40), 2**40), dtype=np.int64),
        ],
        index=range_indexes(max_size=40),
    ),
    chunksize=st.integers(1, 50),
    multi=st.booleans(),
)
def test_chunked_agg_equals_groupby_for_any_chunk_size(
    df: pd.DataFrame, chunksize: int, multi: bool
) -> None:
    df["k"] = df["k"].astype("str")
    by = ["k", "j"] if multi else "k"
    expected = df.groupby(by).agg(_AGGS)
    got = chunked_agg(df, by, _AGGS, chunksize)
    # A sum of values near +-1e6 that cancels to ~0 has no relative precision left, in
    # pandas or here: compare to the scale of the data as well as relatively.
    scale = 1e-12 * max(1.0, float(np.nanmax(np.abs(df["x"].to_numpy()), initial=0.0))) ** 2
    assert_frame_equal(got, expected, check_exact=False, rtol=1e-12, atol=scale * len(df))
    pd.testing.assert_series_equal(got.dtypes, expected.dtypes)


@pytest.mark.parametrize("chunksize", [1, 7, 1000])
def test_groups_missing_from_some_chunks(chunksize: int) -> None:
    # group "b" only in the last rows, "c" only in the first: most chunks lack one of them
    df = pd.DataFrame(
        {
            "k": ["c"] * 3 + ["a"] * 50 + ["b"] * 2,
            "x": np.r_[np.arange(3.0), np.linspace(0, 1, 50), [np.nan, 5.0]],
        }
    )
    aggs = {"x": ["count", "sum", "mean", "min", "max", "var", "std"]}
    assert_frame_equal(chunked_agg(df, "k", aggs, chunksize), df.groupby("k").agg(aggs), rtol=1e-12)

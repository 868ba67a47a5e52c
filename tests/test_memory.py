"""Tests of mlperf.memory (optimize_dtypes, footprint) and mlperf.io.chunked (chunked_agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlperf.data import make_customers, write_purchases
from mlperf.io.chunked import chunked_agg, iter_chunks
from mlperf.memory import REPORT_COLUMNS, footprint, optimize_dtypes, peak_memory

# ------------------------------------------------------------------ optimize_dtypes


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([0, 127], "int64", "int8"),
        ([0, 255], "int64", "uint8"),
        ([-129, 0], "int64", "int16"),
        ([0, 65_535], "int64", "uint16"),
        ([1, 999_999], "int64", "int32"),
        ([0, 2**32 - 1], "int64", "uint32"),
        ([-(2**63), 0], "int64", None),
        ([0, 2**64 - 1], "uint64", None),
        ([0, 2**63], "uint64", None),  # needs uint64 already
        ([1, 2], "int8", None),
    ],
)
def test_integers_get_the_smallest_type_holding_min_to_max(values, dtype, expected) -> None:
    df = pd.DataFrame({"x": np.array(values, dtype=dtype)})
    out = optimize_dtypes(df)
    assert out["x"].dtype == np.dtype(expected or dtype)
    assert out["x"].tolist() == values


def test_nullable_integers_stay_nullable() -> None:
    df = pd.DataFrame(
        {
            "x": pd.array([1, None, 300], dtype="Int64"),
            "y": pd.array([None, None], dtype="Int64")[[0, 1, 0]],
        }
    )
    out, report = optimize_dtypes(df, return_report=True)
    assert out["x"].dtype == "Int16"
    assert out["x"].isna().tolist() == [False, True, False]
    assert out["y"].dtype == "Int64"  # no values: nothing to size by
    assert "no values" in report.at[1, "note"]


def test_floats_kept_unless_exact_or_asked() -> None:
    df = pd.DataFrame(
        {
            "exact": [0.5, -2.25, np.nan, np.inf, -0.0],
            "inexact": [0.1, 0.2, 0.3, 0.4, 0.5],
            "huge": [1e300, 1.0, 2.0, 3.0, 4.0],
            "tiny": [1e-300, 1.0, 2.0, 3.0, 4.0],
        }
    )
    kept = optimize_dtypes(df)
    assert kept.dtypes.astype(str).tolist() == ["float32", "float64", "float64", "float64"]
    assert np.signbit(kept["exact"].iloc[4])
    lossy, report = optimize_dtypes(df, floats="float32", return_report=True)
    assert lossy.dtypes.astype(str).tolist() == ["float32", "float32", "float64", "float64"]
    assert report["lossy"].tolist() == [False, True, False, False]
    assert 0 < report.at[1, "max_rel_error"] <= 2.0**-24
    for i in (2, 3):
        assert "outside the float32 range" in report.at[i, "note"]


def test_nullable_floats() -> None:
    df = pd.DataFrame({"x": pd.array([0.5, None, 2.0], dtype="Float64")})
    out = optimize_dtypes(df)
    assert out["x"].dtype == "Float32"
    assert out["x"].isna().tolist() == [False, True, False]


def test_text_becomes_category_below_the_ratio() -> None:
    df = pd.DataFrame(
        {
            "str": pd.array(["東京", "大阪", "東京", None] * 3, dtype="str"),
            "object": pd.Series(["a", None, "a", "b"] * 3, dtype=object),
            "unique": pd.array([f"id{i}" for i in range(12)], dtype="str"),
            "mixed": pd.Series([1, "a"] * 6, dtype=object),
        }
    )
    out, report = optimize_dtypes(df, return_report=True)
    assert out.dtypes.astype(str).tolist() == ["category", "category", "str", "object"]
    assert out["str"].cat.categories.tolist() == sorted(["東京", "大阪"])
    assert out["str"].isna().tolist() == df["str"].isna().tolist()
    assert "read back as NaN" in report.at[1, "note"]
    assert optimize_dtypes(df, categories=0)["str"].dtype == df["str"].dtype
    # the categories match what astype("category") would choose
    assert out["str"].dtype == df["str"].astype("category").dtype


def test_many_distinct_texts_grow_the_codes() -> None:
    words = pd.array([f"w{i % 300}" for i in range(100_000)], dtype="str")
    out = optimize_dtypes(pd.DataFrame({"w": words}))
    assert out["w"].cat.codes.dtype == np.int16
    assert (out["w"].astype("str") == words).all()


def test_other_dtypes_are_left_alone() -> None:
    df = pd.DataFrame(
        {
            "b": [True, False, True],
            "t": pd.to_datetime(["2020-01-01", None, "2021-01-01"]),
            "d": pd.to_timedelta([1, 2, 3], unit="s"),
            "c": pd.Categorical(["x", "y", "x"]),
            "z": [1 + 2j, 0j, 1j],
        }
    )
    out = optimize_dtypes(df)
    assert_frame_equal(out, df)


def test_duplicate_names_and_empty_frames_are_not_mangled() -> None:
    df = pd.DataFrame([[1, 2.5, 3]], columns=["a", "a", "b"])
    out = optimize_dtypes(df)
    assert list(out.columns) == ["a", "a", "b"]
    assert out.dtypes.astype(str).tolist() == ["int8", "float32", "int8"]
    empty = make_customers(0)
    assert_frame_equal(optimize_dtypes(empty), empty)
    no_columns = pd.DataFrame(index=range(3))
    assert_frame_equal(optimize_dtypes(no_columns), no_columns)


def test_index_attrs_and_input_are_kept() -> None:
    df = pd.DataFrame({"x": [1, 2]}, index=pd.Index(["p", "q"], name="k"))
    df.attrs["source"] = "test"
    out = optimize_dtypes(df)
    assert out.index.equals(df.index) and out.attrs == {"source": "test"}
    assert df["x"].dtype == np.int64  # not inplace: the input is untouched


def test_inplace_changes_the_frame_itself() -> None:
    df = make_customers(1_000)
    out = optimize_dtypes(df, inplace=True)
    assert out is df and df["user_id"].dtype == np.int32


def test_report_lists_every_column() -> None:
    df = make_customers(1_000)
    _, report = optimize_dtypes(df, return_report=True)
    assert tuple(report.columns) == REPORT_COLUMNS
    assert report["column"].tolist() == list(df.columns)
    assert report["old_dtype"].tolist() == ["int64", "float64", "float64", "str", "float64"]
    assert report["new_dtype"].tolist() == ["int32", "float64", "float64", "category", "float64"]
    assert report.at[0, "bytes_before"] == 8_000 and report.at[0, "bytes_after"] == 4_000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"floats": "half"}, "floats must be 'keep'"),
        ({"categories": 2}, "categories is a distinct/len ratio"),
        ({"categories": True}, "categories is a distinct/len ratio"),
    ],
)
def test_bad_arguments_are_named(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        optimize_dtypes(pd.DataFrame({"x": [1]}), **kwargs)
    with pytest.raises(TypeError, match="must be a pandas DataFrame; got 'dict'"):
        optimize_dtypes({"x": [1]})  # type: ignore[arg-type]


def test_footprint_counts_strings_deeply() -> None:
    df = make_customers(1_000)
    assert footprint(df) == df.memory_usage(deep=True).sum()
    assert footprint(df["category"]) == df["category"].memory_usage(deep=True)
    with pytest.raises(TypeError):
        footprint([1, 2])  # type: ignore[arg-type]


def test_inplace_peak_is_about_one_column() -> None:
    df = make_customers(200_000)
    column = 200_000 * 8
    with peak_memory() as mem:
        optimize_dtypes(df, inplace=True)
    # new int32 user_id, category codes and ~1 MiB of temporaries: under two float64 columns
    assert mem.python < 2 * column, mem


# ------------------------------------------------------------------ chunked_agg


AGGS = {"age": ["count", "sum", "mean", "min", "max", "var", "std"], "user_id": ["sum", "max"]}


def test_flat_and_multiindex_columns_like_pandas() -> None:
    df = make_customers(5_000)
    flat = {"age": "mean", "score": "max"}
    assert_frame_equal(
        chunked_agg(df, "category", flat, 777), df.groupby("category").agg(flat), rtol=1e-12
    )
    mixed = {"age": "mean", "score": ["min", "max"]}
    assert_frame_equal(
        chunked_agg(df, "category", mixed, 777), df.groupby("category").agg(mixed), rtol=1e-12
    )


def test_multiple_keys_and_missing_keys() -> None:
    df = make_customers(5_000)
    df["flag"] = df["user_id"] % 3
    df.loc[::11, "category"] = None
    df.loc[::13, "flag"] = np.nan
    expected = df.groupby(["category", "flag"]).agg(AGGS)
    assert_frame_equal(chunked_agg(df, ["category", "flag"], AGGS, 333), expected, rtol=1e-12)


def test_narrow_and_nullable_columns_keep_pandas_dtypes() -> None:
    df = pd.DataFrame(
        {
            "k": ["a", "b"] * 50,
            "i8": np.full(100, 100, dtype=np.int8),  # sums overflow int8: pandas widens
            "u8": np.arange(100, dtype=np.uint8),
            "b": np.arange(100) % 3 == 0,
            "I": pd.array([1, None] * 50, dtype="Int64"),
            "F": pd.array([0.5, None, 2.0, 4.0] * 25, dtype="Float64"),
            "f32": np.linspace(0, 1, 100, dtype=np.float32),
        }
    )
    aggs = {c: ["count", "sum", "mean", "min", "max", "std"] for c in df.columns[1:]}
    expected = df.groupby("k").agg(aggs)
    got = chunked_agg(df, "k", aggs, 7)
    pd.testing.assert_series_equal(got.dtypes, expected.dtypes)
    # float32: pandas sums in float32, chunked_agg in float64 then rounds: ~1e-7 apart
    assert_frame_equal(got, expected, rtol=1e-6)
    assert_frame_equal(
        got.drop(columns="f32", level=0), expected.drop(columns="f32", level=0), rtol=1e-12
    )


def test_text_and_datetime_columns_take_count_min_max() -> None:
    df = pd.DataFrame(
        {
            "k": [1, 2, 1, 2, 1],
            "s": pd.array(["b", "a", None, "c", "a"], dtype="str"),
            "t": pd.to_datetime(["2020-01-05", None, "2020-01-01", "2021-01-01", "2019-06-01"]),
        }
    )
    aggs = {"s": ["count", "min", "max"], "t": ["min", "max"]}
    assert_frame_equal(chunked_agg(df, "k", aggs, 2), df.groupby("k").agg(aggs))
    with pytest.raises(TypeError, match=r"column 's' has dtype str; \['mean'\] need a numeric"):
        chunked_agg(df, "k", {"s": "mean"}, 2)


def test_csv_chunks_with_changing_inferred_dtypes(tmp_path: Path) -> None:
    # ints in the first chunk, a missing value later: a full read infers float64
    path = tmp_path / "data.csv"
    path.write_text("k,x\n" + "".join(f"a,{i}\n" for i in range(10)) + "a,\nb,3\n")
    expected = pd.read_csv(path).groupby("k").agg({"x": ["sum", "min", "mean"]})
    assert_frame_equal(chunked_agg(path, "k", {"x": ["sum", "min", "mean"]}, 4), expected)


def test_parquet_file_and_directory(tmp_path: Path) -> None:
    files = write_purchases(tmp_path / "parts", 30_000, rows_per_file=10_000)
    whole = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    aggs = {"purchase_amount": ["sum", "mean", "std"], "purchase_count": ["sum", "max"]}
    expected = whole.groupby("region").agg(aggs)
    assert_frame_equal(chunked_agg(tmp_path / "parts", "region", aggs, 4_096), expected, rtol=1e-12)
    assert_frame_equal(
        chunked_agg(files[0], "region", aggs, 999),
        pd.read_parquet(files[0]).groupby("region").agg(aggs),
        rtol=1e-12,
    )


def test_parquet_memory_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.parquet"
    make_customers(1_000_000).to_parquet(path, row_group_size=100_000)
    with peak_memory() as mem:
        chunked_agg(path, "category", {"age": "mean", "score": "std"}, 50_000)
    assert mem.peak < 48 * 2**20, mem  # a full read holds 41 MB of frame alone


def test_empty_sources_give_pandas_empty_result(tmp_path: Path) -> None:
    df = make_customers(0)
    aggs = {"age": ["mean", "count"]}
    assert_frame_equal(chunked_agg(df, "category", aggs, 10), df.groupby("category").agg(aggs))
    path = tmp_path / "empty.csv"
    df.to_csv(path, index=False)
    got = chunked_agg(path, "category", aggs, 10)
    assert got.empty and list(got.columns) == [("age", "mean"), ("age", "count")]
    keys_missing = pd.DataFrame({"category": [None, None], "age": [1.0, 2.0]})
    assert chunked_agg(keys_missing, "category", aggs, 1).empty


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda df: chunked_agg(df, "category", {"age": "median"}, 10),
            ValueError,
            "cannot combine 'median'",
        ),
        (
            lambda df: chunked_agg(df, "category", {"nope": "mean"}, 10),
            KeyError,
            r"\['nope'\] are not in the source",
        ),
        (lambda df: chunked_agg(df, "category", {"category": "count"}, 10), ValueError, "are keys"),
        (
            lambda df: chunked_agg(df, "category", {"age": "mean"}, 0),
            ValueError,
            "chunksize must be a positive",
        ),
        (
            lambda df: chunked_agg(df, "category", ["age"], 10),
            TypeError,
            "aggs must be a non-empty dict",
        ),
        (
            lambda df: chunked_agg("x.txt", "category", {"age": "mean"}, 10),
            FileNotFoundError,
            "does not exist",
        ),
        (
            lambda df: chunked_agg(3, "category", {"age": "mean"}, 10),
            TypeError,
            "source must be a DataFrame",
        ),
    ],
)
def test_errors_name_the_problem(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call(make_customers(10))


def test_unknown_file_kind(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("k,x\na,1\n")
    with pytest.raises(ValueError, match="pass fmt='csv'"):
        chunked_agg(path, "k", {"x": "sum"}, 10)
    assert chunked_agg(path, "k", {"x": "sum"}, 10, fmt="csv")["x"].tolist() == [1]


def test_iter_chunks_of_a_frame_are_views() -> None:
    df = make_customers(1_000)
    chunks = list(iter_chunks(df, 300, columns=["age"]))
    assert [len(c) for c in chunks] == [300, 300, 300, 100]
    assert np.shares_memory(chunks[0]["age"].to_numpy(), df["age"].to_numpy())

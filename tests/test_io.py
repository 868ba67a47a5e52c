"""Tests of mlperf.io: the format registry, its guards and its reports."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

import mlperf.io
import mlperf.io.chunked
from mlperf.data import make_customers
from mlperf.io import (
    FORMATS,
    FormatError,
    compare_formats,
    load,
    plot_formats,
    roundtrip_report,
    save,
)


def _mixed() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i8": np.array([1, -2, 3], dtype=np.int8),
            "f32": np.array([0.1, np.nan, 3.5], dtype=np.float32),
            "f64": [0.1, np.nan, 1 / 3],
            "city": pd.array(["東京", None, "大阪"], dtype="str"),
            "obj": pd.Series(["a", None, "c"], dtype=object),
            "cat": pd.Categorical(["A", None, "B"]),
            "when": pd.to_datetime(["2020-01-01", None, "2021-06-30"]).astype("datetime64[ns]"),
            "flag": [True, False, True],
        }
    )


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_round_trips_as_declared(fmt: str, tmp_path: Path) -> None:
    df = _mixed()
    out = load(save(df, tmp_path / f"x{FORMATS[fmt].suffix}", fmt), fmt)
    assert_frame_equal(out, FORMATS[fmt].expected(df), check_exact=True)


def test_exact_formats_declare_nothing() -> None:
    assert FORMATS["pickle"].changes == () and FORMATS["h5py"].changes == ()
    assert any("int8" in c for c in FORMATS["csv"].changes)


def test_h5py_keeps_what_others_lose(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "東京": pd.Series(["x", None, np.nan], dtype=object, index=[10, 20, 30]),
            "dup": pd.array([1, None, 3], dtype="Int16"),
            "cat": pd.Categorical(["lo", "hi", None], categories=["lo", "hi"], ordered=True),
            "b": pd.array([True, None, False], dtype="boolean"),
            "td": pd.to_timedelta([1, 2, 3], unit="s"),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )
    df.columns = ["東京", "dup", "dup", "b", "td"]
    out = load(save(df, tmp_path / "x.h5", "h5py"), "h5py")
    assert_frame_equal(out, df, check_exact=True)
    assert out.iloc[1, 0] is None and out.iloc[2, 0] is not None  # None and NaN kept apart


def test_h5py_refuses_what_it_cannot_store(tmp_path: Path) -> None:
    df = pd.DataFrame({"p": pd.period_range("2020", periods=2, freq="D")})
    with pytest.raises(ValueError, match=r"column 'p': its dtype period\[D\]"):
        save(df, tmp_path / "x.h5", "h5py")
    assert list(tmp_path.iterdir()) == []  # no final file, no temporary left behind


@pytest.mark.parametrize(
    ("fmt", "df", "match"),
    [
        ("parquet-zstd", pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names"),
        ("feather", pd.DataFrame({1: [1]}), "column names must be strings"),
        ("csv", pd.DataFrame(index=range(3)), "would lose its 3 rows"),
        ("hdf5-table", make_customers(0), "PyTables writes nothing"),
        ("json", pd.DataFrame({"x": [1.7976931348623157e308]}), "overflows"),
        ("json", pd.DataFrame({"x": [5e-324]}), "subnormal"),
        ("csv", pd.DataFrame({"x": [1, 2]}, index=[10, 20]), "CSV stores no index"),
        ("json", pd.DataFrame({"x": [1, 2]}, index=[5, 5]), "non-unique index"),
    ],
)
def test_lossy_frames_are_refused(fmt: str, df: pd.DataFrame, match: str, tmp_path: Path) -> None:
    assert FORMATS[fmt].refusal(df)
    with pytest.raises(ValueError, match=match):
        save(df, tmp_path / "x", fmt)


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'xls'; choose one of"):
        save(make_customers(3), tmp_path / "x", "xls")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "nope.csv", "csv")


def test_pickle_loads_only_what_this_process_wrote(tmp_path: Path) -> None:
    df = make_customers(100)
    mine = save(df, tmp_path / "mine.pkl", "pickle")
    assert_frame_equal(load(mine, "pickle"), df)
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(pickle.dumps(df))  # a valid pickle, but not from save()
    with pytest.raises(FormatError, match="did not write"):
        load(foreign, "pickle")
    data = bytearray(mine.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    mine.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="changed since this process wrote it"):
        load(mine, "pickle")


def test_pickle_written_by_another_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pkl"
    code = (
        "import sys; from mlperf.data import make_customers; from mlperf.io import save; "
        "save(make_customers(5), sys.argv[1], 'pickle')"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    with pytest.raises(FormatError, match="did not write"):
        load(path, "pickle")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pickle"])
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_files_raise_naming_file_and_format(fmt: str, damage: str, tmp_path: Path) -> None:
    path = save(make_customers(2_000), tmp_path / f"x{FORMATS[fmt].suffix}", fmt)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4_096, dtype=np.uint8)))
    with pytest.raises(FormatError) as info:
        load(path, fmt)
    assert str(path) in str(info.value) and FORMATS[fmt].label in str(info.value)


def test_roundtrip_report_says_what_survives(tmp_path: Path) -> None:
    report = roundtrip_report(_mixed(), directory=tmp_path).set_index(["format", "column"])
    assert report["as_declared"].all()
    assert not report.at[("csv", "i8"), "dtype_kept"] and report.at[("csv", "i8"), "values_kept"]
    assert not report.at[("csv", "f32"), "values_kept"]  # 0.1f comes back as 0.1
    assert not report.at[("json", "f64"), "values_kept"]  # 1/3 to 15 decimals
    assert report.loc["pickle", ["dtype_kept", "values_kept"]].all().all()
    assert report.loc["feather", "dtype_kept"].drop("obj").all()
    refused = roundtrip_report(pd.DataFrame(index=range(2)), formats=["csv"])
    assert "would lose its 2 rows" in refused.at[0, "refused"]


def test_compare_formats_and_plot(tmp_path: Path) -> None:
    table = compare_formats(make_customers(2_000), repeat=2, formats=["csv", "feather", "json"])
    assert list(table.index) == ["csv", "feather", "json"]
    assert (table[["save_s", "load_s", "bytes"]] > 0).all().all()
    assert table["as_declared"].all() and table.at["feather", "exact"]
    assert table.at["csv", "load_speedup_vs_csv"] == 1.0
    png = plot_formats(table, tmp_path / "plots" / "formats.png")
    assert png.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="repeat must be a positive integer"):
        compare_formats(make_customers(10), repeat=0)


def test_streaming_aggregation_is_shared() -> None:
    assert mlperf.io.chunked_agg is mlperf.io.chunked.chunked_agg


def test_importing_stays_light() -> None:
    code = (
        "import sys, mlperf.io, mlperf.memory, mlperf.io.chunked; "
        "heavy = {'matplotlib', 'h5py', 'tables', 'numba', 'pyspark', 'dask', 'ray'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"

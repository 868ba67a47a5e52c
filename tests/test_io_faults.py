"""mlperf.io under hostile or careless input: crafted files, races, kills, truncation (issue 14)."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlperf.io import FORMATS, FormatError, frames_equal, load, save

# ------------------------------------------------------------------ item 2: HDF5 unpickling


class _Marker:
    """Unpickling this creates the file *path*: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def _evil_object_column(path: Path, marker: Path) -> None:
    pytest.importorskip("tables", reason="the HDF5 formats need PyTables: pip install tables")
    df = pd.DataFrame({"x": pd.Series([_Marker(marker), 1], dtype=object)})
    df.to_hdf(path, key="data", format="fixed", mode="w")


def _evil_attribute(path: Path, marker: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="the HDF5 formats need h5py: pip install h5py")
    save(pd.DataFrame({"x": [1.0, 2.0]}), path, "hdf5-table")
    with h5py.File(path, "r+") as f:  # pandas' own metadata attribute, replaced by a pickle
        f["data"].attrs["info"] = np.bytes_(pickle.dumps(_Marker(marker), protocol=0))


@pytest.mark.filterwarnings("ignore:\\s*your performance may suffer")  # the crafted file's
@pytest.mark.parametrize("craft", [_evil_object_column, _evil_attribute])
def test_a_crafted_hdf5_file_runs_no_code(craft, tmp_path: Path) -> None:
    path, marker = tmp_path / "evil.h5", tmp_path / "pwned"
    craft(path, marker)
    with pytest.raises(FormatError) as info:
        load(path, "hdf5-table")
    assert not marker.exists(), "loading the file ran code from it"
    assert str(path) in str(info.value) and "pickle" in str(info.value)


def test_hdf5_files_with_pandas_own_metadata_still_load(tmp_path: Path) -> None:
    pytest.importorskip("tables", reason="the HDF5 formats need PyTables: pip install tables")
    # pandas pickles an index's freq and time zone into the file's attributes
    df = pd.DataFrame(
        {"x": [1.0, 2.0, 3.0], "t": pd.date_range("2020", periods=3, tz="Asia/Tokyo")},
        index=pd.date_range("2021", periods=3, tz="UTC", name="when"),
    )
    out = load(save(df, tmp_path / "ok.h5", "hdf5-table"), "hdf5-table")
    pd.testing.assert_frame_equal(out, FORMATS["hdf5-table"].expected(df))


# ------------------------------------------------------------------ item 7: atomic saves


@pytest.mark.parametrize("fmt", ["csv", "parquet-zstd", "pickle"])
def test_threads_saving_to_one_path_leave_one_whole_frame(fmt: str, tmp_path: Path) -> None:
    frames = [pd.DataFrame({"x": np.full(n, v)}) for n, v in ((30_000, 1.0), (7_000, 2.0))]
    path = tmp_path / f"x{FORMATS[fmt].suffix}"
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def saver(df: pd.DataFrame) -> None:
        try:
            start.wait()
            for _ in range(15):
                save(df, path, fmt)
        except BaseException as exc:  # noqa: BLE001 -- reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=saver, args=(df,)) for df in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    out = load(path, fmt)
    assert any(frames_equal(out, df) for df in frames), out["x"].value_counts()
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


_SLOW_SAVE = """
import dataclasses, sys, time
import pandas as pd
from mlperf.io import FORMATS, save

def slow(df, fh):
    fh = fh if hasattr(fh, "write") else open(fh, "wb")  # a file object, or a path
    fh.write(b"x" * 100_000)
    fh.flush()
    print("writing", flush=True)
    time.sleep(60)

FORMATS["csv"] = dataclasses.replace(FORMATS["csv"], write=slow)
save(pd.DataFrame({"x": [1]}), sys.argv[1], "csv")
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_a_killed_save_leaves_no_file_behind(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.csv"
    target.parent.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAVE, str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        if not hasattr(os, "O_TMPFILE"):
            pytest.skip(
                "only Linux (O_TMPFILE) can write a file with no name; elsewhere a "
                "killed save leaves its hidden .tmp file"
            )
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert list(target.parent.iterdir()) == []


def test_a_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = save(pd.DataFrame({"x": [1, 2]}), tmp_path / "x.h5", "h5py")
    bad = pd.DataFrame({"p": pd.period_range("2020", periods=2, freq="D")})
    with pytest.raises((TypeError, ValueError)):
        save(bad, path, "h5py")
    assert load(path, "h5py")["x"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["x.h5"]


# ------------------------------------------------------------------ item 9: truncated CSV


def test_a_csv_cut_at_a_row_boundary_is_refused(tmp_path: Path) -> None:
    path = save(pd.DataFrame({"a": range(10), "b": ["東京"] * 10}), tmp_path / "x.csv", "csv")
    data = path.read_bytes()
    for cut in range(len(data) - 1, 0, -1):  # every proper prefix, line boundaries included
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError, match="truncated") as info:
            load(path, "csv")
        assert str(path) in str(info.value)
    path.write_bytes(data)
    assert load(path, "csv")["a"].tolist() == list(range(10))


def test_a_csv_with_text_holding_line_breaks_cut_anywhere_is_refused(tmp_path: Path) -> None:
    df = pd.DataFrame({"s": ["a\r\nb", "c\n", "\r", "d"], "n": [1, 2, 3, 4]})
    path = save(df, tmp_path / "x.csv", "csv")
    data = path.read_bytes()
    for cut in range(1, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError):
            load(path, "csv")


# ------------------------------------------------------------------ item 15: empty CSV


@pytest.mark.parametrize(
    "df",
    [pd.DataFrame(), pd.DataFrame(columns=pd.Index([], dtype=object)), pd.DataFrame({"a": []})],
    ids=["0x0", "0x0-object-columns", "0x1"],
)
def test_empty_frames_round_trip_through_csv(df: pd.DataFrame, tmp_path: Path) -> None:
    out = load(save(df, tmp_path / "x.csv", "csv"), "csv")
    assert out.shape == df.shape
    assert frames_equal(out, FORMATS["csv"].expected(df))


# ------------------------------------------------------------------ item 6: values never change


@pytest.mark.parametrize(
    ("fmt", "column", "match"),
    [
        ("json", np.array([2**64 - 1], dtype=np.uint64), "18446744073709551615"),
        ("json", pd.array([2**53 + 1, None], dtype="Int64"), "9007199254740993 beside missing"),
        ("json", pd.to_timedelta([1, 2], unit="s"), "cannot read durations"),
        ("json", pd.array([pd.Timestamp("2020-01-01 00:00:00.000000001", tz="UTC")]), "nanosec"),
        ("csv", pd.array([2**53 + 1, None], dtype="Int64"), "9007199254740993 beside missing"),
        ("csv", pd.array([2**63 - 1, None], dtype="UInt64"), "9223372036854775807"),
        ("json", np.array(["3000-01-01"], dtype="datetime64[s]"), "reach only"),
        ("parquet-zstd", pd.Categorical([2**53 + 1, None]), "9007199254740993 beside missing"),
        ("json", pd.Categorical([2**55, 0, None]), "36028797018963968 beside missing"),
        ("parquet-zstd", np.array([2**62], dtype="datetime64[s]"), "milliseconds"),
        ("hdf5-table", pd.array([1, None], dtype="Int64"), "no missing-value mask"),
        ("hdf5-table", pd.array([True, None], dtype="boolean"), "no missing-value mask"),
    ],
)
def test_a_value_a_format_would_change_is_refused(fmt, column, match, tmp_path: Path) -> None:
    df = pd.DataFrame({"c": column})
    with pytest.raises(ValueError, match=match) as info:
        save(df, tmp_path / f"x{FORMATS[fmt].suffix}", fmt)
    assert "'c'" in str(info.value)  # names the column
    assert not list(tmp_path.iterdir())


def _issue_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tz": pd.to_datetime(["2020-01-01 09:00", None]).tz_localize("Asia/Tokyo"),
            "flag": pd.array([True, None], dtype="boolean"),
            "f": pd.array([1 / 3, None], dtype="Float64"),
            "i": pd.array([2**53 + 1, 7], dtype="Int64"),
            "u": np.array([2**63 - 1, 0], dtype=np.uint64),
            "s": pd.array(["東京", None], dtype="string[python]"),
        }
    )


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_nullable_tz_aware_and_extreme_columns_come_back_as_declared(
    fmt: str, tmp_path: Path
) -> None:
    from mlperf.io import difference

    df = _issue_frame()
    spec = FORMATS[fmt]
    if reason := spec.refusal(df):
        assert fmt == "hdf5-table" and "no missing-value mask" in reason
        df = df.drop(columns=["flag", "f", "i"])
    out = load(save(df, tmp_path / f"x{spec.suffix}", fmt), fmt)
    assert difference(out, spec.expected(df)) is None
    for name in {"i", "u"} & set(df.columns):  # the integers the issue saw change
        assert [int(v) for v in out[name]] == [int(v) for v in df[name]], name


def test_frames_equal_is_exact() -> None:
    third = pd.DataFrame({"f": pd.array([1 / 3], dtype="Float64")})
    assert not frames_equal(
        third, pd.DataFrame({"f": pd.array([0.333333333333333], dtype="Float64")})
    )
    assert not frames_equal(pd.DataFrame({"x": [0.0]}), pd.DataFrame({"x": [-0.0]}))
    none, nan = (pd.DataFrame({"o": pd.Series([v], dtype=object)}) for v in (None, np.nan))
    assert not frames_equal(none, nan)
    empty_range, empty_object = pd.DataFrame(), pd.DataFrame(columns=pd.Index([], dtype=object))
    assert not frames_equal(empty_range, empty_object)
    assert frames_equal(third, third.copy()) and frames_equal(nan, nan.copy())

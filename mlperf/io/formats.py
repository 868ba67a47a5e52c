"""The file-format registry behind :mod:`mlperf.io`: writers, readers, refusals.

Each :class:`Format` pairs a writer (to a binary file object) and a reader (from a
path) with the list of changes it declares, implemented in :mod:`mlperf.io.expect`,
and with a refusal rule for the frames it would lose rows or columns of.  Pickle
remembers a SHA-256 of every file this process wrote and unpickles nothing else
(see :func:`_pickle_read`); the PyTables reader first refuses any file that would
make PyTables unpickle something (:mod:`mlperf.io.hdf_guard`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import pickle
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from mlperf._optional import require
from mlperf.io import h5columns, hdf_guard
from mlperf.io.expect import expect_arrow, expect_csv, expect_hdf, expect_json, expect_parquet
from mlperf.io.refusals import (
    also,
    csv_refuses,
    h5py_refuses,
    hdf_refuses,
    json_refuses,
    names,
    parquet_refuses,
)

__all__ = ["FORMATS", "Format", "FormatError"]


class FormatError(ValueError):
    """A file cannot be loaded (corrupt, truncated, or a pickle this process did not write)."""


@dataclass(frozen=True)
class Format:
    """One file format: how to write and read it, and what it changes."""

    name: str
    label: str
    suffix: str
    write: Callable[[pd.DataFrame, BinaryIO], None]
    read: Callable[[Path], pd.DataFrame]
    changes: tuple[str, ...]
    expect: Callable[[pd.DataFrame], pd.DataFrame]
    refuses: Callable[[pd.DataFrame], str | None]

    def expected(self, df: pd.DataFrame) -> pd.DataFrame:
        """What ``load(save(df))`` returns: *df* with exactly the declared changes."""
        return self.expect(df)

    def refusal(self, df: pd.DataFrame) -> str | None:
        """Why this format would lose part of *df* (then :func:`save` refuses it), or None."""
        return self.refuses(df)


# ---------------------------------------------------------------- readers and writers


def _csv_write(df: pd.DataFrame, fh: BinaryIO) -> None:
    # Quoting every text field keeps " " and "a\rb" intact (pandas leaves "\r" unquoted).
    # Rows end with CRLF (RFC 4180) and the last one with LF alone, so that a file cut
    # at a row boundary -- any prefix of the rows is a valid CSV file -- can be told
    # from a whole one: see _csv_read.
    df.to_csv(fh, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\r\n")
    end = fh.tell()
    if end >= 2:
        fh.seek(end - 2)
        if fh.read(2) == b"\r\n":
            fh.seek(end - 2)
            fh.write(b"\n")
            fh.truncate()


_NO_COLUMNS = (b"\n", b'""\n')  # what to_csv writes for a frame with no columns (and no rows)


def _csv_read(path: Path) -> pd.DataFrame:
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - 3))
        tail = f.read()
    if size <= 3 and tail in _NO_COLUMNS:  # the whole file
        return pd.DataFrame(index=pd.RangeIndex(0), columns=pd.RangeIndex(0))
    if not tail.endswith(b"\n"):
        raise FormatError(
            "the file ends mid-row (no final newline): truncated; write it again with save()"
        )
    if tail.endswith(b"\r\n"):
        raise FormatError(
            "its last row ends with CRLF, but save() ends every row but the last with CRLF "
            "and the last with LF alone: the file was cut at a row boundary (truncated), "
            "and should be written again with save(), or another program wrote it (read "
            "such a file with pandas.read_csv)"
        )
    # Only an empty field is missing: "NA", "null" and "None" stay text.
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


_DIGESTS: set[bytes] = set()  # SHA-256 of every pickle this process wrote


def _pickle_write(df: pd.DataFrame, fh: BinaryIO) -> None:
    data = pickle.dumps(df, protocol=5)
    _DIGESTS.add(hashlib.sha256(data).digest())
    fh.write(data)


def _pickle_read(path: Path) -> pd.DataFrame:
    data = path.read_bytes()  # check and unpickle the same bytes: no swap in between
    if hashlib.sha256(data).digest() not in _DIGESTS:
        raise FormatError(
            "refusing to unpickle it: this process did not write this file, or it changed "
            "since this process wrote it (truncated, corrupt or replaced), and unpickling "
            "runs arbitrary code; if you trust the file, read it with pandas.read_pickle"
        )
    frame = pickle.loads(data)  # content checked above: bytes this process produced
    if not isinstance(frame, pd.DataFrame):
        raise FormatError(f"the pickle holds a {type(frame).__name__}, not a DataFrame")
    return frame


def _hdf_write(df: pd.DataFrame, fh: BinaryIO) -> None:
    require("tables", "the HDF5 (PyTables) format")
    # HDF5 cannot write through a file object: build the file in memory (PyTables' core
    # driver, nothing on disk), then copy its image.
    with pd.HDFStore(
        "mlperf-in-memory.h5", mode="w", driver="H5FD_CORE", driver_core_backing_store=0
    ) as store:
        store.put("data", df, format="table", track_times=False)  # deterministic bytes
        image = store._handle.get_file_image()
    fh.write(image)


def _hdf_read(path: Path) -> pd.DataFrame:
    require("tables", "the HDF5 (PyTables) format")
    image = path.read_bytes()  # check and read the same bytes: no swap in between
    if risk := hdf_guard.unpickling_risk(image):
        raise FormatError(
            f"refusing to read it: {risk}; unpickling runs arbitrary code.  If you trust "
            f"the file, read it with pandas.read_hdf yourself"
        )
    with pd.HDFStore(
        f"{path}.{uuid.uuid4().hex}.in-memory",  # HDF5 refuses an image named like a file
        mode="r",
        driver="H5FD_CORE",
        driver_core_image=image,
        driver_core_backing_store=0,
    ) as store:
        del image  # HDF5 holds its own copy
        frame = store.select("data")
    if not isinstance(frame, pd.DataFrame):
        raise FormatError(f"the key 'data' holds a {type(frame).__name__}, not a DataFrame")
    return frame


def _parquet(codec: str) -> Callable[[pd.DataFrame, BinaryIO], None]:
    def write(df: pd.DataFrame, fh: BinaryIO) -> None:
        # Dictionary pages for text and categories only: a high-cardinality numeric
        # column starts in dictionary pages and falls back to plain ones mid-column,
        # which made 1M customer rows 3% larger and twice as slow to load (2026-11-26,
        # a 2-core CI VM).
        text = [
            str(c)
            for c, t in df.dtypes.items()
            if isinstance(t, pd.CategoricalDtype | pd.StringDtype) or t == np.dtype(object)
        ]
        df.to_parquet(fh, compression=codec, use_dictionary=text)

    return write


def _feather(codec: str) -> Callable[[pd.DataFrame, BinaryIO], None]:
    return lambda df, fh: df.to_feather(fh, compression=codec)


def _json_write(df: pd.DataFrame, fh: BinaryIO) -> None:
    # The table schema keeps dtypes and categories; 15 digits is the most to_json writes.
    df.to_json(fh, orient="table", double_precision=15, date_unit="ns")


def _json_read(path: Path) -> pd.DataFrame:
    return pd.read_json(path, orient="table", precise_float=True)


_TEXT = "object columns of text come back as str (None -> NaN)"
_NO_CATEGORIES = (
    "a category column with no categories -> a column of the categories' type, all missing "
    "(object: None; numbers: float64 NaN), or for text categories their Index becomes object"
)
_ARROW_CHANGES = (
    _TEXT,
    "an object column with no values comes back as object holding None",
    "string[python] -> string[pyarrow] (the same values and pd.NA)",
    "categories of a nullable type (Int64...) -> its numpy type (int64...)",
    "a frame with no columns: an empty RangeIndex of columns -> an empty int64 Index",
)
_PARQUET_CHANGES = (
    *_ARROW_CHANGES,
    (
        "a category of numbers (or other non-text values) -> its values, as Arrow reads "
        "them: integers with a missing value -> float64 (beyond 2**53: refused)"
    ),
    "datetime64[s] (tz-aware too) -> datetime64[ms]; beyond the int64 milliseconds: refused",
)

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "csv",
            "CSV",
            ".csv",
            _csv_write,
            _csv_read,
            (
                "int8/int16/int32 and uint8/16/32 -> int64; uint64 -> int64 when every value fits",
                "float32 and Float32 -> float64 of its shortest decimal text (0.1f -> 0.1)",
                (
                    "category, object, string, datetime (tz-aware too) and timedelta columns, "
                    "and nullable numbers and booleans (Int64, Float64, boolean) -> their text "
                    "as to_csv writes it; empty text and missing -> NaN"
                ),
                (
                    "text is typed again when read: all True/False -> bool (object if any "
                    "missing), all integers -> int64 (uint64 above int64), other numbers -> "
                    "float64 ('-0' among integers -> 0.0), no values -> float64 NaN; "
                    "integers beyond 2**53 that would become float64 are refused"
                ),
                "a frame with no rows -> every column object",
                "a frame with no columns (and so no rows) -> columns an empty RangeIndex",
                "the index, which must be 0..n-1 (else the frame is refused) -> RangeIndex",
            ),
            expect_csv,
            also(names(), csv_refuses),
        ),
        Format(
            "parquet-snappy",
            "Parquet (snappy)",
            ".parquet",
            _parquet("snappy"),
            pd.read_parquet,
            (*_PARQUET_CHANGES, _NO_CATEGORIES),
            expect_parquet,
            also(names(), parquet_refuses),
        ),
        Format(
            "parquet-zstd",
            "Parquet (zstd)",
            ".parquet",
            _parquet("zstd"),
            pd.read_parquet,
            (*_PARQUET_CHANGES, _NO_CATEGORIES),
            expect_parquet,
            also(names(), parquet_refuses),
        ),
        Format(
            "feather",
            "Feather (uncompressed)",
            ".feather",
            _feather("uncompressed"),
            pd.read_feather,
            _ARROW_CHANGES,
            expect_arrow,
            names(),
        ),
        Format(
            "feather-lz4",
            "Feather (lz4)",
            ".feather",
            _feather("lz4"),
            pd.read_feather,
            _ARROW_CHANGES,
            expect_arrow,
            names(),
        ),
        Format(
            "hdf5-table",
            "HDF5 (PyTables table)",
            ".h5",
            _hdf_write,
            _hdf_read,
            (
                "RangeIndex -> int64 Index",
                _TEXT,
                "a text column with no values -> object NaN",
                "trailing NUL characters of text are dropped",
                "a category with no categories -> its (empty) categories become float64",
                "categories of a nullable type (Int64...) -> its numpy type (int64...)",
                "nullable numbers and booleans (Int64, Float64, boolean) are refused",
            ),
            expect_hdf,
            also(names(), hdf_refuses),
        ),
        Format(
            "h5py",
            "HDF5 (h5py, column-wise)",
            ".h5",
            h5columns.write,
            h5columns.read,
            (),
            lambda df: df,
            h5py_refuses,
        ),
        Format(
            "pickle",
            "Pickle",
            ".pkl",
            _pickle_write,
            _pickle_read,
            (),
            lambda df: df,
            lambda df: None,
        ),
        Format(
            "json",
            "JSON (table schema)",
            ".json",
            _json_write,
            _json_read,
            (
                (
                    "int8/int16/int32 and unsigned -> int64 (uint64 from 2**63: refused); "
                    "float32 -> float64"
                ),
                (
                    "floats (Float64 and Float32 too): 1e-15 <= |x| <= 1e16 rounded to 15 "
                    "decimals (in double arithmetic, as pandas' writer does), others to 15 "
                    "significant digits; -0.0 -> 0.0; inf and -inf -> NaN (Float64: pd.NA)"
                ),
                (
                    "nullable integers and integer categories with a missing value beyond "
                    "2**53 are refused (read through float64); timedeltas are refused (the "
                    "reader cannot parse them)"
                ),
                (
                    "datetimes (tz-aware too) -> unit ns; outside 1677..2262, or tz-aware with "
                    "nanoseconds (written in microseconds): refused"
                ),
                _TEXT,
                "string[python] -> string[pyarrow] (the same values and pd.NA)",
                "an object column with no values -> object NaN",
                "a category with no categories -> its (empty) categories become object",
                "categories of a nullable type (Int64...) -> its numpy type (int64...)",
                (
                    "an integer index comes back int64, or as a RangeIndex when it is empty "
                    "or has two or more evenly spaced values (one row: int64 Index)"
                ),
            ),
            expect_json,
            also(names(), json_refuses),
        ),
    )
}

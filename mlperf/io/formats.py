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
from mlperf.io.expect import (
    expect_arrow,
    expect_csv,
    expect_hdf,
    expect_json,
    expect_parquet,
    json_floats,
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


# ---------------------------------------------------------------- refusals


def _names(*, strings: bool = True, unique: bool = True) -> Callable[[pd.DataFrame], str | None]:
    def check(df: pd.DataFrame) -> str | None:
        if unique and df.columns.has_duplicates:
            dup = df.columns[df.columns.duplicated()].unique().tolist()
            return f"duplicate column names {dup!r} (rename them, or use 'pickle' or 'h5py')"
        if strings and not all(isinstance(c, str) for c in df.columns):
            bad = [c for c in df.columns if not isinstance(c, str)][:3]
            return f"column names must be strings; got {bad!r} (rename them)"
        return None

    return check


Refusal = Callable[[pd.DataFrame], "str | None"]


def _also(first: Refusal, rule: Refusal) -> Refusal:
    return lambda df: first(df) or rule(df)


def _no_columns(df: pd.DataFrame) -> str | None:
    if df.shape[1] == 0 and len(df):
        return f"a frame with no columns would lose its {len(df)} rows"
    return None


def _csv_refuses(df: pd.DataFrame) -> str | None:
    if not df.index.equals(pd.RangeIndex(len(df))) or df.index.name is not None:
        return (
            f"CSV stores no index, and this one ({type(df.index).__name__} starting "
            f"{df.index[:3].tolist()!r}) would be lost; df.reset_index() keeps it as a column"
        )
    return _no_columns(df)


def _json_refuses(df: pd.DataFrame) -> str | None:
    if df.shape[1] == 0:
        return "the table schema of a frame with no columns does not keep its row index"
    if not df.index.is_unique:
        return "read_json replaces a non-unique index by 0..n-1; make the index unique"
    tiny, huge = np.finfo(np.float64).smallest_normal, np.finfo(np.float64).max
    for i in range(df.shape[1]):
        col = df.iloc[:, i]
        if not (isinstance(col.dtype, np.dtype) and col.dtype.kind == "f"):
            continue
        x = col.to_numpy().astype(np.float64)
        ax = np.abs(x)
        edge = x[np.isfinite(x) & (ax != 0) & ((ax < 1.01 * tiny) | (ax > 0.99 * huge))]
        written = np.abs(json_floats(edge))
        bad = edge[(written > huge) | ((written != 0) & (written < tiny))]
        if len(bad):
            return (
                f"column {df.columns[i]!r} holds {float(bad[0])!r}, which is subnormal or "
                f"overflows once written with 15 digits; the JSON reader rejects it"
            )
    return None


def _no_rows(df: pd.DataFrame) -> str | None:
    if len(df) == 0 or df.shape[1] == 0:
        return f"PyTables writes nothing for a frame of shape {df.shape} (load would fail)"
    return None


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
        store.put("data", df, format="table")
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
_ARROW_CHANGES = (_TEXT, "an object column with no values comes back as object holding None")

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
                "int8/int16/int32 -> int64",
                "float32 -> float64 of its shortest decimal text (0.1f -> 0.1)",
                "category, object and datetime columns -> text; empty text and missing -> NaN",
                (
                    "text is typed again when read: all True/False -> bool (object if any "
                    "missing), all numbers -> int64/float64, no values -> float64 NaN"
                ),
                "a frame with no rows -> every column object",
                "the index, which must be 0..n-1 (else the frame is refused) -> RangeIndex",
            ),
            expect_csv,
            _also(_names(), _csv_refuses),
        ),
        Format(
            "parquet-snappy",
            "Parquet (snappy)",
            ".parquet",
            _parquet("snappy"),
            pd.read_parquet,
            (*_ARROW_CHANGES, _NO_CATEGORIES),
            expect_parquet,
            _also(_names(), _no_columns),
        ),
        Format(
            "parquet-zstd",
            "Parquet (zstd)",
            ".parquet",
            _parquet("zstd"),
            pd.read_parquet,
            (*_ARROW_CHANGES, _NO_CATEGORIES),
            expect_parquet,
            _also(_names(), _no_columns),
        ),
        Format(
            "feather",
            "Feather (uncompressed)",
            ".feather",
            _feather("uncompressed"),
            pd.read_feather,
            _ARROW_CHANGES,
            expect_arrow,
            _names(),
        ),
        Format(
            "feather-lz4",
            "Feather (lz4)",
            ".feather",
            _feather("lz4"),
            pd.read_feather,
            _ARROW_CHANGES,
            expect_arrow,
            _names(),
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
            ),
            expect_hdf,
            _also(_names(), _no_rows),
        ),
        Format(
            "h5py",
            "HDF5 (h5py, column-wise)",
            ".h5",
            h5columns.write,
            h5columns.read,
            (),
            lambda df: df,
            lambda df: None,
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
                "int8/int16/int32 -> int64; float32 -> float64",
                (
                    "floats: 1e-15 <= |x| <= 1e16 rounded to 15 decimals (in double "
                    "arithmetic, as pandas' writer does), others to 15 significant digits; "
                    "-0.0 -> 0.0; inf and -inf -> NaN"
                ),
                _TEXT,
                "an object column with no values -> object NaN",
                "a category with no categories -> its (empty) categories become object",
                (
                    "an integer index comes back int64, or as a RangeIndex when it is empty "
                    "or has two or more evenly spaced values (one row: int64 Index)"
                ),
            ),
            expect_json,
            _also(_names(), _json_refuses),
        ),
    )
}

"""Which frames each format refuses, and why: the ones it would lose part of.

A format may declare a change of dtype (:mod:`mlperf.io.expect`), never a change of
value: where reading a file back would change a value, lose rows or columns, or
fail, :func:`mlperf.io.save` refuses the frame with the sentence one of these rules
returns (the rule, the offending value, what to do instead).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from mlperf.io.expect import csv_inexact, json_floats, masked, parquet_seconds_overflow

__all__ = [
    "Refusal",
    "also",
    "csv_refuses",
    "h5py_refuses",
    "hdf_refuses",
    "json_refuses",
    "names",
    "no_columns",
    "parquet_refuses",
]

Refusal = Callable[[pd.DataFrame], "str | None"]

_EXACT = "parquet, feather, h5py or pickle"


def names(*, strings: bool = True, unique: bool = True) -> Refusal:
    def check(df: pd.DataFrame) -> str | None:
        if unique and df.columns.has_duplicates:
            dup = df.columns[df.columns.duplicated()].unique().tolist()
            return f"duplicate column names {dup!r} (rename them, or use 'pickle' or 'h5py')"
        if strings and not all(isinstance(c, str) for c in df.columns):
            bad = [c for c in df.columns if not isinstance(c, str)][:3]
            return f"column names must be strings; got {bad!r} (rename them)"
        return None

    return check


def also(*rules: Refusal) -> Refusal:
    def check(df: pd.DataFrame) -> str | None:
        for rule in rules:
            if reason := rule(df):
                return reason
        return None

    return check


def _columns(df: pd.DataFrame) -> list[tuple[object, pd.Series]]:
    return [(df.columns[i], df.iloc[:, i]) for i in range(df.shape[1])]


def _through_float64(name: object, value: object, how: str, fix: str) -> str:
    """The sentence for an integer a reader would round: it reads the column as float64."""
    return (
        f"column {name!r} holds {value!r} beside missing values{how}; float64 holds "
        f"integers exactly only up to 2**53: {fix}"
    )


def no_columns(df: pd.DataFrame) -> str | None:
    if df.shape[1] == 0 and len(df):
        return f"a frame with no columns would lose its {len(df)} rows"
    return None


def csv_refuses(df: pd.DataFrame) -> str | None:
    if not df.index.equals(pd.RangeIndex(len(df))) or df.index.name is not None:
        return (
            f"CSV stores no index, and this one ({type(df.index).__name__} starting "
            f"{df.index[:3].tolist()!r}) would be lost; df.reset_index() keeps it as a column"
        )
    for name, col in _columns(df):
        if (value := csv_inexact(col)) is not None:
            how = " or decimals: CSV reads such a column back as float64"
            return _through_float64(name, value, how, f"fill them, or use {_EXACT}")
    return no_columns(df)


def _category_inexact(col: pd.Series) -> object | None:
    cats = col.dtype.categories
    if not col.isna().any() or getattr(cats.dtype, "kind", None) not in ("i", "u"):
        return None
    used = cats[np.unique(col.cat.codes.to_numpy()[col.notna().to_numpy()])]
    big = [v for v in used.tolist() if abs(int(v)) > 2**53]  # in ints: float(2**53 + 1) == 2**53
    return big[0] if big else None


def parquet_refuses(df: pd.DataFrame) -> str | None:
    for name, col in _columns(df):
        if (value := parquet_seconds_overflow(col)) is not None:
            return (
                f"column {name!r} holds {value!r}: Parquet has no seconds unit and "
                f"milliseconds (int64) cannot hold it; use feather, h5py or pickle"
            )
        if isinstance(col.dtype, pd.CategoricalDtype) and (
            (value := _category_inexact(col)) is not None
        ):
            how = " (a category): Parquet reads it back as float64"
            return _through_float64(name, value, how, "use feather, h5py or pickle")
    return no_columns(df)


def hdf_refuses(df: pd.DataFrame) -> str | None:
    if len(df) == 0 or df.shape[1] == 0:
        return f"PyTables writes nothing for a frame of shape {df.shape} (load would fail)"
    for name, col in _columns(df):
        if masked(col.dtype):
            return (
                f"column {name!r} is {col.dtype}: PyTables' table format has no missing-value "
                f"mask; convert it (e.g. df[{name!r}].astype("
                f"{str(col.dtype.numpy_dtype)!r}) when nothing is missing), or use {_EXACT}"
            )
    return None


_NS_MIN, _NS_MAX = pd.Timestamp.min, pd.Timestamp.max


def _json_column(name: object, col: pd.Series) -> str | None:
    dtype = col.dtype
    kind = getattr(dtype, "kind", None)
    if kind == "m":
        return (
            f"column {name!r} is {dtype}: pandas' JSON reader cannot read durations back; "
            f"store col.dt.total_seconds() or use {_EXACT}"
        )
    if dtype == np.uint64 and len(col) and col.max() >= 2**63:
        return (
            f"column {name!r} holds {int(col.max())!r}: the JSON reader reads integers as "
            f"int64, where it would wrap around; use {_EXACT}"
        )
    if masked(dtype) and kind in ("i", "u") and col.isna().any():
        values = col.dropna().to_numpy(dtype=object)
        big = [v for v in values.tolist() if abs(int(v)) > 2**53]
        if big:
            how = ": the JSON reader reads such a column through float64"
            return _through_float64(name, big[0], how, f"fill them, or use {_EXACT}")
    if kind == "M":
        present = col.dropna()
        if len(present):
            lo, hi = present.min(), present.max()
            tz = getattr(dtype, "tz", None)
            bounds = (
                (_NS_MIN, _NS_MAX)
                if tz is None
                else (_NS_MIN.tz_localize("UTC"), _NS_MAX.tz_localize("UTC"))
            )
            if lo < bounds[0] or hi > bounds[1]:
                bad = lo if lo < bounds[0] else hi
                return (
                    f"column {name!r} holds {bad!r}: the JSON reader reads datetimes in "
                    f"nanoseconds, which reach only {_NS_MIN} .. {_NS_MAX}; use {_EXACT}"
                )
            if tz is not None:
                ns = present.astype(f"datetime64[ns, {tz}]").array.asi8
                if (ns % 1000).any():
                    bad = present.iloc[int(np.flatnonzero(ns % 1000)[0])]
                    return (
                        f"column {name!r} holds {bad!r}: pandas writes time-zone-aware "
                        f"datetimes to JSON in microseconds and would drop its nanoseconds; "
                        f"use {_EXACT}"
                    )
    if kind == "f":
        x = col.to_numpy(dtype=np.float64, na_value=np.nan)
        tiny, huge = np.finfo(np.float64).smallest_normal, np.finfo(np.float64).max
        ax = np.abs(x)
        edge = x[np.isfinite(x) & (ax != 0) & ((ax < 1.01 * tiny) | (ax > 0.99 * huge))]
        written = np.abs(json_floats(edge))
        bad = edge[(written > huge) | ((written != 0) & (written < tiny))]
        if len(bad):
            return (
                f"column {name!r} holds {float(bad[0])!r}, which is subnormal or "
                f"overflows once written with 15 digits; the JSON reader rejects it"
            )
    return None


def json_refuses(df: pd.DataFrame) -> str | None:
    if df.shape[1] == 0:
        return "the table schema of a frame with no columns does not keep its row index"
    if not df.index.is_unique:
        return "read_json replaces a non-unique index by 0..n-1; make the index unique"
    for name, col in _columns(df):
        if reason := _json_column(name, col):
            return reason
        if isinstance(col.dtype, pd.CategoricalDtype) and (
            (value := _category_inexact(col)) is not None
        ):
            # 2**54 + 1 and 2**55 came back missing (pandas 3.1, 2026-12)
            how = " (a category): the JSON reader matches its values through float64"
            how += " and makes those it cannot hold missing"
            return _through_float64(name, value, how, f"use {_EXACT}")
    return None


def h5py_refuses(df: pd.DataFrame) -> str | None:
    from mlperf.io.h5columns import unsupported

    for name, col in _columns(df):
        if reason := unsupported(col):
            return f"column {name!r}: {reason}"
    return None

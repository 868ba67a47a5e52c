"""The declared changes of each file format, as functions: ``expected(df)``.

Each function applies to a frame exactly the changes its format's ``changes``
list declares (``mlperf.io.FORMATS``), nothing more.  The Hypothesis suite checks
``load(save(df)) == expected(df)`` exactly, so an undeclared change fails there.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.core.dtypes.dtypes import BaseMaskedDtype

__all__ = [
    "expect_arrow",
    "expect_csv",
    "expect_hdf",
    "expect_json",
    "expect_parquet",
    "json_floats",
    "masked",
]

Rule = Callable[[pd.Series], pd.Series]


def _each_column(df: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    out = df.copy()
    for i in range(df.shape[1]):
        out.isetitem(i, rule(df.iloc[:, i]))
    return out


def _object_text(s: pd.Series) -> bool:
    return pd.api.types.is_object_dtype(s.dtype) and pd.api.types.infer_dtype(s, skipna=True) in (
        "string",
        "empty",
    )


def _missing_object(s: pd.Series, marker: object) -> pd.Series:
    return pd.Series([marker] * len(s), index=s.index, name=s.name, dtype=object)


def masked(dtype: object) -> bool:
    """A nullable number or boolean (``Int64``, ``UInt8``, ``Float64``, ``boolean``)."""
    return isinstance(dtype, BaseMaskedDtype)


def _numpy_categories(s: pd.Series) -> pd.Series:
    """Categories of a nullable type come back as its numpy type (Int64 -> int64)."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype) and masked(dtype.categories.dtype):
        numpy_type = dtype.categories.dtype.numpy_dtype
        cats = pd.Index(dtype.categories.to_numpy(dtype=numpy_type), dtype=numpy_type)
        return s.astype(pd.CategoricalDtype(cats, dtype.ordered))
    return s


def _python_strings(s: pd.Series) -> pd.Series:
    """string[python] comes back with the default (pyarrow) storage: same values, same NA."""
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "python" and dtype.na_value is pd.NA:
        return s.astype(pd.StringDtype("pyarrow"))
    return s


def _no_columns(df: pd.DataFrame, out: pd.DataFrame, columns: pd.Index | None) -> pd.DataFrame:
    """A frame with no columns: its (empty) columns become *columns*; None: an empty
    RangeIndex becomes an empty int64 Index (Arrow), others are kept."""
    if df.shape[1] == 0:
        if columns is not None:
            out.columns = columns
        elif isinstance(df.columns, pd.RangeIndex):
            out.columns = pd.Index([], dtype=np.int64)
    return out


# ---------------------------------------------------------------- Arrow (Feather, Parquet)


def _arrow_rule(s: pd.Series) -> pd.Series:
    if _object_text(s) and len(s):
        return s.astype("str") if s.notna().any() else _missing_object(s, None)
    return _python_strings(_numpy_categories(s))


def expect_arrow(df: pd.DataFrame) -> pd.DataFrame:
    """Feather: object text -> str (None -> NaN); all-missing object -> object of None."""
    return _no_columns(df, _each_column(df, _arrow_rule), None)


#: Parquet has no seconds unit: Arrow writes timestamp[s] as timestamp[ms]
_MS_PER_S = 1000


def _unit(dtype: object) -> str | None:
    """The unit of a datetime or timedelta dtype (naive or tz-aware), else None."""
    if isinstance(dtype, np.dtype) and dtype.kind in "mM":
        return np.datetime_data(dtype)[0]
    return getattr(dtype, "unit", None) if isinstance(dtype, pd.DatetimeTZDtype) else None


def parquet_seconds_overflow(s: pd.Series) -> object | None:
    """The first value of a datetime64[s] column that milliseconds (int64) cannot hold."""
    dtype = s.dtype
    if getattr(dtype, "kind", None) != "M" or _unit(dtype) != "s":
        return None
    ticks = s.to_numpy().view(np.int64) if isinstance(dtype, np.dtype) else s.array.asi8
    present = ticks[ticks != np.iinfo(np.int64).min]
    bad = present[np.abs(present) > np.iinfo(np.int64).max // _MS_PER_S]
    return s[s.notna()].iloc[int(np.flatnonzero(np.isin(present, bad))[0])] if len(bad) else None


def _category_values(s: pd.Series) -> pd.Series:
    """A category of numbers (or other non-text values): its values, as Arrow reads them."""
    cats = s.dtype.categories
    value_type = pa.array(cats.to_numpy(dtype=getattr(cats.dtype, "numpy_dtype", None))).type
    values = s.astype(object).where(s.notna(), None).tolist()
    out = pa.array(values, type=value_type).to_pandas()
    out.index, out.name = s.index, s.name
    return out


def _parquet_rule(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        # Only the dictionary's value type is stored, and pandas reads a dictionary back
        # (as a category) only for text.
        cats = dtype.categories.dtype
        if len(dtype.categories) == 0:
            if isinstance(cats, pd.StringDtype):
                return s.astype(pd.CategoricalDtype(pd.Index([], dtype=object), dtype.ordered))
            if pd.api.types.is_object_dtype(cats):
                return _missing_object(s, None)
        if not (isinstance(cats, pd.StringDtype) or pd.api.types.is_object_dtype(cats)):
            return _category_values(s)
    if getattr(dtype, "kind", None) == "M" and _unit(dtype) == "s":
        target = "datetime64[ms]" if isinstance(dtype, np.dtype) else f"datetime64[ms, {dtype.tz}]"
        return s.astype(target)
    return _arrow_rule(s)


def expect_parquet(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet: Feather's changes, categories of numbers -> their values, seconds -> ms."""
    return _no_columns(df, _each_column(df, _parquet_rule), None)


# ---------------------------------------------------------------- HDF5 (PyTables table)


def _hdf_rule(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype) and len(s.dtype.categories) == 0:
        return s.astype(pd.CategoricalDtype(pd.Index([], dtype=np.float64), s.dtype.ordered))
    text = _object_text(s) or isinstance(s.dtype, pd.StringDtype)
    if not text or not len(s):
        return _numpy_categories(s)
    if not s.notna().any():
        return _missing_object(s, np.nan)
    out = s.astype("str")
    return out.str.rstrip("\x00") if out.str.endswith("\x00").any() else out


def expect_hdf(df: pd.DataFrame) -> pd.DataFrame:
    """HDF5 table: RangeIndex -> int64 Index; object text -> str; no values -> object NaN."""
    out = _each_column(df, _hdf_rule)
    out.index = pd.Index(df.index.to_numpy(), name=df.index.name)
    return out


# ---------------------------------------------------------------- JSON (table schema)


def json_floats(values: np.ndarray) -> np.ndarray:
    """The float64 values ``to_json(double_precision=15)`` writes, read back exactly.

    pandas' JSON writer prints 1e-15 <= |x| <= 1e16 with 15 decimals rounded in
    double arithmetic (modp_dtoa: ``frac = (x - whole) * 1e15``, half to even), not
    correctly rounded; other magnitudes as ``%.14e``; zero as ``0.0`` (no sign).
    This mirrors it operation for operation (checked on 300k random values).
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.empty_like(x)
    a = np.abs(x)
    with np.errstate(invalid="ignore"):
        fixed = (a >= 1e-15) & (a <= 1e16)
    whole = np.floor(a[fixed])
    scaled = (a[fixed] - whole) * 1e15
    frac = np.floor(scaled)
    rest = scaled - frac
    frac += (rest > 0.5) | ((rest == 0.5) & (frac % 2 == 1))
    carry = frac >= 1e15
    frac[carry] = 0
    whole[carry] += 1
    # the text "W.FFFFFFFFFFFFFFF", read back: Python's int / int rounds correctly
    scale = 10**15
    pairs = zip(whole.astype(np.int64).tolist(), frac.astype(np.int64).tolist(), strict=True)
    text = [(w * scale + f) / scale for w, f in pairs]
    out[fixed] = np.copysign(text, x[fixed])
    out[~fixed] = [float(f"{v:.14e}") for v in x[~fixed].tolist()]
    out[x == 0] = 0.0
    return out


def _json_masked_floats(s: pd.Series) -> pd.Series:
    values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    out = json_floats(values)
    missing = np.isnan(out) | np.isinf(out)  # inf is written as null
    out[missing] = 0.0
    out = out.astype(s.dtype.numpy_dtype)  # Float32: read back as float32
    return pd.Series(pd.arrays.FloatingArray(out, missing), index=s.index, name=s.name)


def _json_rule(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if (
        isinstance(dtype, np.dtype)
        and dtype.kind in "iu"
        and (dtype.itemsize < 8 or dtype.kind == "u")
    ):
        return s.astype(np.int64)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        out = json_floats(s.to_numpy())
        out[np.isinf(out)] = np.nan  # JSON has no inf
        return pd.Series(out, index=s.index, name=s.name)
    if masked(dtype) and dtype.kind == "f":
        return _json_masked_floats(s)
    if getattr(dtype, "kind", None) == "M":  # read back in nanoseconds
        tz = getattr(dtype, "tz", None)
        return s.astype("datetime64[ns]" if tz is None else f"datetime64[ns, {tz}]")
    if _object_text(s) and len(s):
        return s.astype("str") if s.notna().any() else _missing_object(s, np.nan)
    if isinstance(dtype, pd.CategoricalDtype) and len(dtype.categories) == 0:
        empty = pd.CategoricalDtype(pd.Index([], dtype=object), ordered=dtype.ordered)
        return s.astype(empty)
    return _python_strings(_numpy_categories(s))


def expect_json(df: pd.DataFrame) -> pd.DataFrame:
    """JSON: narrow ints -> int64, floats -> float64 rounded to 15 digits, inf -> NaN."""
    out = _each_column(df, _json_rule)
    index = df.index
    if pd.api.types.is_integer_dtype(index.dtype) and not isinstance(index, pd.MultiIndex):
        # read_json makes an evenly spaced integer index a RangeIndex, from two rows on
        steps = np.unique(np.diff(index.to_numpy()))
        if len(index) == 0:
            out.index = pd.RangeIndex(0, name=index.name)
        elif len(index) >= 2 and len(steps) == 1 and steps[0] != 0:
            out.index = pd.RangeIndex(index[0], index[-1] + steps[0], steps[0], name=index.name)
        else:
            out.index = pd.Index(index.to_numpy(dtype=np.int64), name=index.name)
    return out


# ---------------------------------------------------------------- CSV

_TRUE, _FALSE = "true", "false"
_INT = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*")
_FLOAT = re.compile(
    r"[ \t]*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)[ \t]*",
    re.IGNORECASE,
)


def _retype_text(s: pd.Series) -> pd.Series:
    """What read_csv makes of a column of text (empty and missing are NaN).

    Vectorised with pandas' string methods (1M values in ~0.1 s on a 2-core CI VM,
    2026-11-26): the reader
    compares its tokens in ASCII only, hence the ``isascii`` guards.
    """
    text = s.astype("str")
    present = (text.notna() & (text != "")).to_numpy(dtype=bool)
    index, name = s.index, s.name
    if not present.any():
        return pd.Series(np.nan, index=index, name=name, dtype=np.float64)
    words = text[present]
    ascii_ = bool(words.str.isascii().all())
    lowered = words.str.lower()
    if ascii_ and lowered.isin([_TRUE, _FALSE]).all():
        flags = (lowered == _TRUE).to_numpy(dtype=bool)
        if present.all():
            return pd.Series(flags, index=index, name=name)
        out = np.full(len(s), np.nan, dtype=object)
        out[present] = flags.tolist()
        return pd.Series(out, index=index, name=name, dtype=object)
    if ascii_ and present.all() and words.str.fullmatch(_INT.pattern).all():
        ints = [int(w) for w in words]
        if all(-(2**63) <= i < 2**63 for i in ints):
            return pd.Series(ints, index=index, name=name, dtype=np.int64)
        if all(0 <= i < 2**64 for i in ints):
            return pd.Series(ints, index=index, name=name, dtype=np.uint64)
    if ascii_ and words.str.fullmatch(_FLOAT.pattern, case=False).all():
        floats = np.full(len(s), np.nan)
        # integers and missing values only: parsed as integers, then made float ("-0" ->
        # 0.0); beside a decimal, every word is parsed as a float ("-0" -> -0.0)
        if words.str.fullmatch(_INT.pattern).all():
            floats[present] = [float(int(w)) for w in words]
        else:
            floats[present] = [float(w) for w in words]
        return pd.Series(floats, index=index, name=name)
    return text.where(present, np.nan)


def csv_text(s: pd.Series) -> pd.Series:
    """The text to_csv writes for each value of *s* (None where missing).

    Datetimes and timedeltas are printed per column (midnights alone drop the time,
    a unit sets the digits), so this asks pandas' own writer.
    """
    if not len(s):
        return pd.Series([], index=s.index, name=s.name, dtype=object)
    sentinel = "\x00missing\x00"
    written = s.to_frame().to_csv(index=False, header=False, lineterminator="\n", na_rep=sentinel)
    lines = written.split("\n")[: len(s)]
    return pd.Series([None if w == sentinel else w for w in lines], index=s.index, name=s.name)


def _masked_text(s: pd.Series) -> pd.Series:
    """A nullable number or boolean as to_csv writes it (missing: None)."""
    if s.dtype.kind == "f":
        # Float32 prints its shortest float32 text, Float64 its repr
        numbers = s.to_numpy(dtype=s.dtype.numpy_dtype, na_value=np.nan)
        words = [None if m else str(v) for v, m in zip(numbers, s.isna(), strict=True)]
    else:
        words = [None if v is pd.NA else str(v) for v in s.astype(object).tolist()]
    return pd.Series(words, index=s.index, name=s.name, dtype=object)


def _csv_rule(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.itemsize < 8:
        return s.astype(np.int64)
    if dtype == np.uint64:  # read as int64 when every value fits
        return s.astype(np.int64) if not len(s) or s.max() < 2**63 else s
    if dtype == np.float32:
        # the writer prints the float32's shortest text; the reader parses it as float64
        return pd.Series(s.to_numpy().astype(str).astype(np.float64), index=s.index, name=s.name)
    if masked(dtype):
        return _retype_text(_masked_text(s))
    if getattr(dtype, "kind", None) in ("M", "m"):
        return _retype_text(csv_text(s))
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or _object_text(s):
        return _retype_text(s)
    return s


def csv_inexact(s: pd.Series) -> object | None:
    """An integer that reading *s* back from CSV would change, or None.

    The reader makes a column of integers with a missing value (or with other
    numbers) float64, which holds integers exactly only up to 2**53.
    """
    dtype = s.dtype
    if masked(dtype) and dtype.kind in "iu":
        words = _masked_text(s)
    elif _object_text(s) or isinstance(dtype, pd.StringDtype | pd.CategoricalDtype):
        words = s.astype(object).where(s.notna(), None)
    else:
        return None
    present = [w for w in words.tolist() if isinstance(w, str) and w != ""]
    if not present or not all(w.isascii() for w in present):
        return None
    ints = [w for w in present if _INT.fullmatch(w)]
    if not ints or (len(ints) == len(present) == len(words)):  # all integers: no floats
        return None
    if not all(_FLOAT.fullmatch(w) for w in present):  # stays text
        return None
    big = [w for w in ints if abs(int(w)) > 2**53]
    return int(big[0]) if big and masked(dtype) else (big[0] if big else None)


def expect_csv(df: pd.DataFrame) -> pd.DataFrame:
    """CSV: see ``FORMATS['csv'].changes``."""
    out = _each_column(df, (lambda s: s.astype(object)) if len(df) == 0 else _csv_rule)
    out.index = pd.RangeIndex(len(df))  # only 0..n-1 is accepted; any such index
    return _no_columns(df, out, pd.RangeIndex(0))

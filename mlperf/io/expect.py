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

__all__ = [
    "expect_arrow",
    "expect_csv",
    "expect_hdf",
    "expect_json",
    "expect_parquet",
    "json_floats",
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


# ---------------------------------------------------------------- Arrow (Feather, Parquet)


def _arrow_rule(s: pd.Series) -> pd.Series:
    if _object_text(s) and len(s):
        return s.astype("str") if s.notna().any() else _missing_object(s, None)
    return s


def expect_arrow(df: pd.DataFrame) -> pd.DataFrame:
    """Feather: object text -> str (None -> NaN); all-missing object -> object of None."""
    return _each_column(df, _arrow_rule)


def _parquet_rule(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype) and len(s.dtype.categories) == 0:
        # Only the dictionary's value type is stored, and pandas reads that type back.
        cats = s.dtype.categories.dtype
        if isinstance(cats, pd.StringDtype):
            return s.astype(pd.CategoricalDtype(pd.Index([], dtype=object), s.dtype.ordered))
        if pd.api.types.is_object_dtype(cats):
            return _missing_object(s, None)
        if len(s):
            return pd.Series(np.nan, index=s.index, name=s.name, dtype=np.float64)
        return pd.Series([], index=s.index, name=s.name, dtype=cats)
    return _arrow_rule(s)


def expect_parquet(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet: Feather's changes, and a category with no categories -> float64 NaN."""
    return _each_column(df, _parquet_rule)


# ---------------------------------------------------------------- HDF5 (PyTables table)


def _hdf_rule(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.CategoricalDtype) and len(s.dtype.categories) == 0:
        return s.astype(pd.CategoricalDtype(pd.Index([], dtype=np.float64), s.dtype.ordered))
    text = _object_text(s) or isinstance(s.dtype, pd.StringDtype)
    if not text or not len(s):
        return s
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


def _json_rule(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.itemsize < 8:
        return s.astype(np.int64)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        out = json_floats(s.to_numpy())
        out[np.isinf(out)] = np.nan  # JSON has no inf
        return pd.Series(out, index=s.index, name=s.name)
    if _object_text(s) and len(s):
        return s.astype("str") if s.notna().any() else _missing_object(s, np.nan)
    if isinstance(dtype, pd.CategoricalDtype) and len(dtype.categories) == 0:
        empty = pd.CategoricalDtype(pd.Index([], dtype=object), ordered=dtype.ordered)
        return s.astype(empty)
    return s


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
    if ascii_ and words.str.fullmatch(_FLOAT.pattern, case=False).all():
        floats = np.full(len(s), np.nan)
        floats[present] = [float(w) for w in words]
        return pd.Series(floats, index=index, name=name)
    return text.where(present, np.nan)


def _csv_rule(s: pd.Series) -> pd.Series:
    dtype = s.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" and dtype.itemsize < 8:
        return s.astype(np.int64)
    if dtype == np.float32:
        # the writer prints the float32's shortest text; the reader parses it as float64
        return pd.Series(s.to_numpy().astype(str).astype(np.float64), index=s.index, name=s.name)
    if isinstance(dtype, np.dtype) and dtype.kind == "M":
        return _retype_text(s.astype(str).where(s.notna(), None))
    if isinstance(dtype, pd.CategoricalDtype | pd.StringDtype) or _object_text(s):
        return _retype_text(s)
    return s


def expect_csv(df: pd.DataFrame) -> pd.DataFrame:
    """CSV: see ``FORMATS['csv'].changes``."""
    out = _each_column(df, (lambda s: s.astype(object)) if len(df) == 0 else _csv_rule)
    out.index = pd.RangeIndex(len(df))  # only 0..n-1 is accepted; any such index
    return out

"""Exact equality of frames: every dtype, value, missing marker, index and column name.

``pandas.testing.assert_frame_equal(check_exact=True)`` is not exact: it compares
nullable floats (``Float64``) to a relative 1e-5, -0.0 equals 0.0, ``None`` equals
NaN in an object column, and the columns' own dtype is not compared.  A format
check built on it let ``Float64`` 1/3 -> 0.333333333333333 pass as unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["difference", "frames_equal"]


def frames_equal(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Exactly equal: values, missing markers, dtypes, index and column names.

    A float's sign (-0.0) counts, so do the types of the objects in an object
    column (1 is not 1.0, None is not NaN); NaN equals NaN.
    """
    return difference(left, right) is None


def difference(left: pd.DataFrame, right: pd.DataFrame) -> str | None:
    """The first way *left* and *right* differ, in words, or None when they are exactly equal."""
    if left.shape != right.shape:
        return f"shape {left.shape} != {right.shape}"
    if found := _index_difference(left.columns, right.columns, "columns"):
        return found
    if found := _index_difference(left.index, right.index, "index"):
        return found
    for i in range(left.shape[1]):
        if found := _values_difference(left.iloc[:, i], right.iloc[:, i]):
            return f"column {i} ({left.columns[i]!r}): {found}"
    return None


def _index_difference(a: pd.Index, b: pd.Index, what: str) -> str | None:
    if type(a) is not type(b):
        return f"{what}: {type(a).__name__} != {type(b).__name__}"
    if list(a.names) != list(b.names):
        return f"{what}: names {list(a.names)!r} != {list(b.names)!r}"
    if isinstance(a, pd.MultiIndex):
        for level in range(a.nlevels):
            found = _values_difference(
                pd.Series(a.get_level_values(level)), pd.Series(b.get_level_values(level))
            )
            if found:
                return f"{what} level {level}: {found}"
        return None
    found = _values_difference(pd.Series(a, dtype=a.dtype), pd.Series(b, dtype=b.dtype))
    return f"{what}: {found}" if found else None


def _marker(x: Any) -> str:
    if x is None:
        return "None"
    if x is pd.NA:
        return "NA"
    if x is pd.NaT:
        return "NaT"
    return type(x).__name__  # float nan, numpy datetime64('NaT'), Decimal('NaN')...


def _same_float(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        same: np.ndarray = (x == y) | (np.isnan(x) & np.isnan(y))
    signs: np.ndarray = np.signbit(x.real) == np.signbit(y.real)
    both: np.ndarray = same & signs
    return both


def _values_difference(a: pd.Series, b: pd.Series) -> str | None:
    if a.dtype != b.dtype or str(a.dtype) != str(b.dtype):
        return f"dtype {a.dtype} != {b.dtype}"
    if len(a) != len(b):
        return f"length {len(a)} != {len(b)}"
    dtype = a.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = _index_difference(dtype.categories, b.dtype.categories, "categories")
        if cats:
            return cats
        codes_a, codes_b = a.cat.codes.to_numpy(), b.cat.codes.to_numpy()
        if not np.array_equal(codes_a, codes_b):
            at = int(np.flatnonzero(codes_a != codes_b)[0])
            return f"row {at}: {a.iloc[at]!r} != {b.iloc[at]!r}"
        return None
    na_a, na_b = a.isna().to_numpy(dtype=bool), b.isna().to_numpy(dtype=bool)
    if not np.array_equal(na_a, na_b):
        at = int(np.flatnonzero(na_a != na_b)[0])
        return f"row {at}: {a.iloc[at]!r} != {b.iloc[at]!r} (one is missing)"
    same: np.ndarray
    kind = getattr(dtype, "kind", "O")
    if kind in "fc" and not pd.api.types.is_object_dtype(dtype):
        target = np.complex128 if kind == "c" else np.float64
        x = a.to_numpy(dtype=target, na_value=np.nan)
        y = b.to_numpy(dtype=target, na_value=np.nan)
        if isinstance(dtype, np.dtype) and dtype.itemsize <= 8:
            x, y = a.to_numpy(), b.to_numpy()  # compared in their own type: no widening
        same = _same_float(x, y) | na_a
    elif isinstance(dtype, np.dtype) and kind in "biumM":
        x, y = a.to_numpy(), b.to_numpy()
        same = (x == y) | na_a
    else:
        x, y = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
        same = np.ones(len(a), dtype=bool)
        for i, (u, v) in enumerate(zip(x.tolist(), y.tolist(), strict=True)):
            if na_a[i]:
                same[i] = _marker(u) == _marker(v)
            elif type(u) is not type(v):
                same[i] = False
            elif isinstance(u, float | complex):
                same[i] = bool(_same_float(np.array([u]), np.array([v]))[0])
            else:
                eq = u == v
                same[i] = bool(eq) if isinstance(eq, bool | np.bool_) else False
    if not same.all():
        at = int(np.flatnonzero(~same)[0])
        return f"row {at}: {a.iloc[at]!r} != {b.iloc[at]!r}"
    return None

"""Dtype optimisation: every column in the smallest dtype that holds its values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

__all__ = ["REPORT_COLUMNS", "FloatMode", "optimize_dtypes"]

FloatMode = Literal["keep", "float32"]

#: Block length for float checks and text encoding: bounds temporaries to ~1 MiB.
_BLOCK = 1 << 16
_F32 = np.finfo(np.float32)
# Smallest first; on equal size the signed type wins (safer under subtraction).
_INT_LADDER: tuple[type[np.integer[Any]], ...] = (
    np.int8,
    np.uint8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.uint64,
)
_NULLABLE_NAME = {"i": "Int", "u": "UInt"}
_NULLABLE_INTS = (
    pd.Int8Dtype,
    pd.Int16Dtype,
    pd.Int32Dtype,
    pd.Int64Dtype,
    pd.UInt8Dtype,
    pd.UInt16Dtype,
    pd.UInt32Dtype,
    pd.UInt64Dtype,
)
_NULLABLE_FLOATS = (pd.Float32Dtype, pd.Float64Dtype)

REPORT_COLUMNS = (
    "position",
    "column",
    "old_dtype",
    "new_dtype",
    "bytes_before",
    "bytes_after",
    "lossy",
    "max_rel_error",
    "note",
)


def _column_bytes(col: pd.Series) -> int:
    return int(col.memory_usage(deep=True, index=False))


@dataclass
class _Change:
    new: pd.Series | np.ndarray | None = None  # None: column left as it is
    lossy: bool = False
    max_rel_error: float = 0.0
    note: str = ""


def _smallest_int(lo: int, hi: int, itemsize: int) -> np.dtype[Any] | None:
    for kind in _INT_LADDER:
        info = np.iinfo(kind)
        if info.min <= lo and hi <= info.max:
            dt = np.dtype(kind)
            return dt if dt.itemsize < itemsize else None
    return None


def _shrink_int(s: pd.Series) -> _Change:
    dtype = s.dtype
    nullable = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if s.count() == 0:
        return _Change(note="no values to size the type by; kept")
    lo, hi = int(s.min()), int(s.max())
    np_dtype = np.dtype(dtype.numpy_dtype) if nullable else np.dtype(dtype)
    target = _smallest_int(lo, hi, np_dtype.itemsize)
    if target is None:
        return _Change(note=f"range {lo}..{hi} needs {np_dtype}")
    if nullable:
        name = _NULLABLE_NAME[target.kind] + str(target.itemsize * 8)
        return _Change(new=s.astype(name), note=f"range {lo}..{hi}")
    return _Change(new=s.astype(target), note=f"range {lo}..{hi}")


def _float32_values(
    values: np.ndarray, mask: np.ndarray | None, mode: FloatMode, measure: bool
) -> _Change:
    """Decide float64 -> float32 block by block so temporaries stay ~1 MiB.

    ``keep`` checks every value round-trips (stopping at the first that does not);
    ``float32`` only checks the range, and measures the error when *measure*.
    """
    # keep: allocate the result only once every value has passed (most columns fail
    # in their first block, and tracemalloc counts even untouched pages)
    out = np.empty(values.shape, dtype=np.float32) if mode == "float32" else None
    lossy, worst, outside = False, 0.0, 0
    for start in range(0, len(values), _BLOCK):
        x = values[start : start + _BLOCK]
        with np.errstate(over="ignore", under="ignore"):
            if out is None:
                f = x.astype(np.float32)
            else:
                f = out[start : start + _BLOCK]
                f[...] = x
        if mode == "keep" or measure:
            back = f.astype(np.float64)
            exact = (back == x) | np.isnan(x)
            if mask is not None:
                exact |= mask[start : start + _BLOCK]
            if not exact.all():
                if mode == "keep":
                    return _Change(
                        note="float32 would change values; kept (floats='float32' accepts that)"
                    )
                lossy = True
                with np.errstate(invalid="ignore", divide="ignore"):
                    rel = np.abs(back - x) / np.abs(x)
                worst = max(worst, float(np.max(rel, where=~exact & np.isfinite(rel), initial=0.0)))
        # Outside the normal float32 range the error is no longer bounded by 2**-24.
        big = np.isinf(f)
        if big.any():
            outside += int(np.count_nonzero(np.isfinite(x[big])))
        small = np.abs(f) < _F32.smallest_normal
        if small.any():
            outside += int(np.count_nonzero(x[small] != f[small]))
    if outside:
        return _Change(
            note=f"{outside} values outside the float32 range "
            f"({_F32.smallest_normal:.3g} <= |x| <= {_F32.max:.3g}); kept"
        )
    if out is None:
        out = values.astype(np.float32)
    return _Change(new=out, lossy=lossy, max_rel_error=worst)


def _shrink_float(s: pd.Series, mode: FloatMode, measure: bool) -> _Change:
    if s.dtype.kind == "f" and s.dtype.itemsize <= 4:
        return _Change(note="already float32 or narrower")
    if not len(s):
        return _Change(note="empty; kept")
    nullable = isinstance(s.dtype, pd.api.extensions.ExtensionDtype)
    if nullable:
        arr = s.array
        mask = np.asarray(arr.isna())
        values = arr.to_numpy(dtype=np.float64, na_value=0.0)
    else:
        mask, values = None, s.to_numpy()
    change = _float32_values(values, mask, mode, measure)
    if change.new is not None:
        data = change.new
        new = pd.arrays.FloatingArray(data, mask.copy()) if mask is not None else data
        change.new = pd.Series(new, index=s.index, name=s.name, copy=False)
    return change


def _is_text(s: pd.Series) -> bool:
    if isinstance(s.dtype, pd.StringDtype):
        return True
    return pd.api.types.is_object_dtype(s.dtype) and pd.api.types.infer_dtype(s, skipna=True) in (
        "string",
        "empty",
    )


def _encode_blocks(s: pd.Series, limit: float) -> tuple[np.ndarray, pd.Index] | None:
    """Factorize *s* block by block (codes in the narrowest int type); None above *limit*.

    ``pd.factorize`` on the whole column allocates int64 codes plus a hash table
    (15 MiB for 1M rows, 2026-11-26); block by block the temporaries stay ~1 MiB, and a column
    with too many distinct values is abandoned early.
    """
    codes = np.empty(len(s), dtype=np.int8)
    known = pd.Index(s.iloc[:0].unique())
    for start in range(0, len(s), _BLOCK):
        block_codes, uniques = pd.factorize(s.iloc[start : start + _BLOCK], use_na_sentinel=True)
        where = known.get_indexer(uniques)
        fresh = where < 0
        if fresh.any():
            where[fresh] = np.arange(len(known), len(known) + int(fresh.sum()))
            known = known.append(pd.Index(uniques[fresh]))
            if len(known) >= limit:
                return None
            if len(known) > np.iinfo(codes.dtype).max:
                codes = codes.astype(np.min_scalar_type(-len(known)))
        # index -1 (missing) picks the appended -1
        codes[start : start + _BLOCK] = np.append(where, -1)[block_codes]
    return codes, known


def _to_category(s: pd.Series, categories: float) -> _Change:
    n = len(s)
    if n == 0:
        return _Change(note="empty; kept")
    encoded = _encode_blocks(s, categories * n)
    if encoded is None:
        return _Change(note=f"at least {categories:g} x {n} distinct values; kept")
    codes, known = encoded
    # astype("category") sorts the categories; do the same, then remap the codes.
    order = known.argsort()
    rank = np.empty(len(known) + 1, dtype=codes.dtype)
    rank[order] = np.arange(len(known))
    rank[-1] = -1
    dtype = pd.CategoricalDtype(known[order])
    new = pd.Series(
        pd.Categorical.from_codes(rank[codes], dtype=dtype), index=s.index, name=s.name, copy=False
    )
    note = f"{len(known)} distinct of {n}"
    if pd.api.types.is_object_dtype(s.dtype) and s.isna().any():
        note += "; missing values read back as NaN"
    return _Change(new=new, note=note)


def _plan(s: pd.Series, floats: FloatMode, categories: float, measure: bool) -> _Change:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype):
        return _Change(note="already compact")
    if (isinstance(dtype, np.dtype) and dtype.kind in "iu") or isinstance(dtype, _NULLABLE_INTS):
        return _shrink_int(s)
    if (isinstance(dtype, np.dtype) and dtype.kind == "f") or isinstance(dtype, _NULLABLE_FLOATS):
        return _shrink_float(s, floats, measure)
    if categories > 0 and _is_text(s):
        return _to_category(s, categories)
    return _Change(note=f"{dtype} is left as it is")


@overload
def optimize_dtypes(
    df: pd.DataFrame,
    *,
    floats: FloatMode = ...,
    categories: float = ...,
    inplace: bool = ...,
    return_report: Literal[False] = ...,
) -> pd.DataFrame: ...
@overload
def optimize_dtypes(
    df: pd.DataFrame,
    *,
    floats: FloatMode = ...,
    categories: float = ...,
    inplace: bool = ...,
    return_report: Literal[True],
) -> tuple[pd.DataFrame, pd.DataFrame]: ...
def optimize_dtypes(
    df: pd.DataFrame,
    *,
    floats: FloatMode = "keep",
    categories: float = 0.5,
    inplace: bool = False,
    return_report: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Store every column in the smallest dtype that holds its values, one column at a time.

    * Integers (numpy and nullable) go to the smallest signed or unsigned type that
      holds min..max; nullable columns stay nullable.
    * Floats go to float32 only when every value survives the round trip exactly
      (``floats="keep"``, lossless), or always with ``floats="float32"``, which
      accepts a relative error of at most 2**-24 (5.96e-8) per value.  Even then a
      column holding values outside the normal float32 range (|x| > 3.4e38, or
      0 < |x| < 1.2e-38 where the error is no longer bounded, unless float32 holds
      the value exactly) is kept and reported.
    * Text columns (object holding only strings, and pandas' ``str``/``string``)
      with fewer than ``categories * len(df)`` distinct values become ``category``.
      A category has a single missing marker, so ``None`` in an object column reads
      back as NaN (both are missing to pandas).
    * Bool, datetime, timedelta, category and any other dtype are left as they are.

    Columns are addressed by position, so duplicate column names are kept.  No
    full copy is made: without ``inplace`` the result is a shallow copy whose
    changed columns are replaced (unchanged columns share memory with *df* under
    pandas' copy-on-write), so the extra peak is the new columns plus about one
    column of temporaries; with ``inplace=True`` *df* itself is changed.

    Parameters
    ----------
    df:
        The frame to optimise.
    floats:
        ``"keep"`` (lossless) or ``"float32"`` (lossy, opt-in).
    categories:
        Distinct/len ratio below which text becomes category; 0 disables.
    inplace:
        Change *df* itself and return it.
    return_report:
        Also return the per-column report (see Returns).

    Returns
    -------
    pandas.DataFrame or (pandas.DataFrame, pandas.DataFrame)
        The optimised frame; with ``return_report=True`` also a report with one row
        per column: ``position, column, old_dtype, new_dtype, bytes_before,
        bytes_after, lossy, max_rel_error, note`` (the note says why a column was
        kept, e.g. values outside the float32 range).

    Raises
    ------
    TypeError
        *df* is not a DataFrame.
    ValueError
        *floats* or *categories* is out of range.

    Examples
    --------
    >>> frame = pd.DataFrame({"n": [1, 2, 300], "x": [0.5, 1.5, 2.25]})
    >>> optimize_dtypes(frame).dtypes.tolist()
    [dtype('int16'), dtype('float32')]
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"optimize_dtypes: df must be a pandas DataFrame; got {type(df).__name__!r}"
        )
    if floats not in ("keep", "float32"):
        raise ValueError(
            f"optimize_dtypes: floats must be 'keep' (lossless) or 'float32' (relative error "
            f"2**-24); got {floats!r}"
        )
    if (
        isinstance(categories, bool)
        or not isinstance(categories, int | float)
        or not (0 <= categories <= 1)
    ):
        raise ValueError(
            f"optimize_dtypes: categories is a distinct/len ratio in [0, 1] (0 disables); "
            f"got {categories!r}"
        )
    out = df if inplace else df.copy(deep=False)
    rows = []
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        change = _plan(col, floats, categories, return_report)
        if change.new is not None:
            out.isetitem(i, change.new)
            change.new = None  # the frame holds it now: no second reference
        if return_report:
            new_col = out.iloc[:, i]
            rows.append(
                (
                    i,
                    out.columns[i],
                    str(col.dtype),
                    str(new_col.dtype),
                    _column_bytes(col),
                    _column_bytes(new_col),
                    change.lossy,
                    change.max_rel_error,
                    change.note,
                )
            )
        del col  # let the replaced column go before the next one is converted
    if not return_report:
        return out
    report = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    return out, report

"""Chunked group-by aggregation whose result equals a full ``groupby().agg()``.

The tutorial's code (``suites/memory/memory_tutorial.py``) aggregates chunk by chunk
and concatenates the per-chunk means (400 rows for 100 chunks x 4 groups); averaging
those was off by 7e-3 on 1M customer rows (2026-11-26), and
``suites/memory/test_memory_chunked.py`` checks that it misses.  Here each
chunk is reduced to sufficient statistics per group, which merge exactly
(:mod:`mlperf.io.grouped` holds the statistics and their merge).  This module
streams the source (:mod:`mlperf.io.sources`), checks its keys and dtypes from
chunk to chunk, and gives the result the index and dtypes pandas would.
Memory stays bounded by one chunk plus the per-group statistics.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlperf.io import grouped
from mlperf.io.grouped import between_m2  # re-exported: its home before mlperf.io.grouped
from mlperf.io.sources import empty_frame, iter_chunks, source_format

__all__ = ["AGG_FUNCS", "between_m2", "chunked_agg", "iter_chunks"]

#: the aggregations chunked_agg can combine exactly
AGG_FUNCS = ("count", "sum", "mean", "min", "max", "var", "std")
# "fsum" is the float64 sum behind mean/var/std: an integer "sum" wraps around as
# pandas' does (four rows of 2**62 sum to 0), which made their mean 0.0
_NEEDS = {
    "count": (),
    "sum": ("sum",),
    "mean": ("fsum",),
    "min": ("min",),
    "max": ("max",),
    "var": ("fsum", "m2"),
    "std": ("fsum", "m2"),
}


def _normalize(aggs: Mapping[Hashable, str | Sequence[str]]) -> tuple[list[tuple[Any, str]], bool]:
    if not isinstance(aggs, Mapping) or not aggs:
        raise TypeError(
            f"chunked_agg: aggs must be a non-empty dict like {{'age': 'mean', 'income': "
            f"['sum', 'std']}}; got {aggs!r}"
        )
    spec, multi = [], False
    for col, funcs in aggs.items():
        if isinstance(funcs, str):
            funcs = [funcs]
        else:
            multi = True
        for func in funcs:
            if func not in AGG_FUNCS:
                raise ValueError(
                    f"chunked_agg: cannot combine {func!r} (column {col!r}) exactly across "
                    f"chunks; use one of {AGG_FUNCS}"
                )
            spec.append((col, func))
    return spec, multi


def _work_dtype(dtype: Any, col: Hashable, funcs: set[str]) -> Any:
    """Widen to a 64-bit type so per-chunk sums cannot overflow a narrow type."""
    if isinstance(dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(dtype):
        numeric = funcs & {"sum", "mean", "var", "std"}
        if numeric:
            raise TypeError(
                f"chunked_agg: column {col!r} has dtype {dtype}; {sorted(numeric)} need a "
                f"numeric or bool column (count, min and max work on any ordered dtype)"
            )
        return dtype
    masked = isinstance(dtype, pd.api.extensions.ExtensionDtype)
    kind = dtype.kind
    if kind == "f":
        return "Float64" if masked else np.float64
    if kind == "u":
        return "UInt64" if masked else np.uint64
    if kind in "ib":
        return "Int64" if masked else np.int64
    raise TypeError(f"chunked_agg: column {col!r} has unsupported dtype {dtype}")


def chunked_agg(
    source: pd.DataFrame | str | Path,
    by: Hashable | list[Hashable],
    aggs: Mapping[Hashable, str | Sequence[str]],
    chunksize: int = 100_000,
    *,
    fmt: str | None = None,
) -> pd.DataFrame:
    """Group-by aggregation over chunks, equal to ``pandas.groupby(by).agg(aggs)``.

    Parameters
    ----------
    source:
        A DataFrame, a CSV file, or a Parquet file / directory of Parquet files.
        Only the key and aggregated columns are read.
    by:
        Key column or list of key columns.  Rows with a missing key are dropped and
        groups are sorted, as pandas does by default.  ``[]``: no keys, the running
        totals of the whole source -- one row (index ``RangeIndex(1)``) equal to a
        group-by that puts every row in one group; with no rows, count and sum are 0
        and the others missing.  A CSV key column whose type differs between chunks
        (numbers, then text) is read again as text and typed as ``read_csv`` types
        the whole column.
    aggs:
        ``{column: func or [funcs]}`` with funcs from :data:`AGG_FUNCS`
        (count, sum, mean, min, max, var, std; var/std with ddof=1).  NaN is
        skipped like pandas does.  A list makes the result's columns a
        ``(column, func)`` MultiIndex, as in pandas.
    chunksize:
        Rows per chunk: the memory bound.
    fmt:
        ``"csv"`` or ``"parquet"`` for a path whose name does not say.

    Returns
    -------
    pandas.DataFrame
        Same index, columns and dtypes as ``source.groupby(by).agg(aggs)`` (for a
        file: as if it had been read whole); sums of float columns and means agree
        to ~1e-15 relative (summation order differs), var/std to ~1e-13.  Means,
        var and std of integers are computed in float64 as pandas does; an integer
        sum wraps around on overflow exactly as pandas' does.

    Raises
    ------
    ValueError, TypeError, KeyError
        Unknown function, non-numeric column for a numeric aggregation, a missing
        column or two columns of one name (naming the file), or a bad *chunksize*.
    pandas.errors.ParserError
        A CSV line has more fields than the header, where ``read_csv`` raises too.

    Examples
    --------
    >>> df = pd.DataFrame({"k": ["a", "b", "a"], "x": [1.0, 2.0, 4.0]})
    >>> chunked_agg(df, "k", {"x": ["mean", "std"]}, chunksize=2)
         x
      mean       std
    k
    a  2.5  2.12132
    b  2.0      NaN
    """
    if isinstance(chunksize, bool) or not isinstance(chunksize, int | np.integer) or chunksize < 1:
        raise ValueError(f"chunked_agg: chunksize must be a positive integer; got {chunksize!r}")
    # pandas reads a list as several keys and anything else (a tuple too) as one
    keys = list(by) if isinstance(by, list) else [by]
    spec, multi = _normalize(aggs)
    value_cols = list(dict.fromkeys(col for col, _ in spec))
    if overlap := set(keys) & set(value_cols):
        raise ValueError(
            f"chunked_agg: {sorted(map(str, overlap))} are keys and cannot be aggregated"
        )
    funcs: dict[Any, set[str]] = {col: set() for col in value_cols}
    for col, func in spec:
        funcs[col].add(func)
    stats = {col: sorted({s for f in fs for s in _NEEDS[f]}) for col, fs in funcs.items()}
    wanted = keys + value_cols

    head = empty_frame(source, wanted, fmt)
    total = None
    if not keys:  # the whole source is one group: a constant key, dropped at the end
        total = "__mlperf_all__"
        while total in head.columns:
            total += "_"
        keys, head = [total], head.assign(**{total: np.zeros(0, dtype=np.int64)})
    job = _Job(source, keys, value_cols, stats, funcs, chunksize, fmt, total)
    try:
        merged, seen_dtypes = job.run(text=False)
    except _KeyTypeChanged:
        # a CSV key typed differently in two chunks (ints, then text): read the keys as
        # text, and type them at the end as read_csv types the whole column
        merged, seen_dtypes = job.run(text=True)
        if merged is not None:
            merged = grouped.merge(_typed_keys(merged, keys, job.missing_keys), len(keys), stats)
    probe = head.astype(seen_dtypes) if seen_dtypes else head
    expected = probe.groupby(keys).agg(dict(aggs)) if total else probe.groupby(by).agg(dict(aggs))
    if merged is None:
        return _empty_totals(expected, spec) if total else expected
    result = grouped.finish(merged, spec, multi, expected.dtypes)
    if total:
        return result.reset_index(drop=True)
    result.index.names = expected.index.names
    return result


class _KeyTypeChanged(Exception):
    pass


class _Job:
    """One pass over the source: the merged per-group statistics and the value dtypes seen."""

    def __init__(
        self,
        source: pd.DataFrame | str | Path,
        keys: list[Hashable],
        value_cols: list[Hashable],
        stats: dict[Any, list[str]],
        funcs: dict[Any, set[str]],
        chunksize: int,
        fmt: str | None,
        total: str | None,
    ) -> None:
        self.source, self.keys, self.value_cols = source, keys, value_cols
        self.stats, self.funcs, self.chunksize, self.fmt = stats, funcs, chunksize, fmt
        self.total = total
        self.missing_keys: dict[Hashable, bool] = {}

    def run(self, *, text: bool) -> tuple[pd.DataFrame | None, dict[Any, Any]]:
        keys, stats = self.keys, self.stats
        layout = pd.MultiIndex.from_tuples(grouped.partial_order(stats))
        buffer: list[pd.DataFrame] = []
        buffered, limit = 0, max(self.chunksize, 1 << 16)
        seen_dtypes: dict[Any, Any] = {}
        key_dtypes: dict[Any, Any] = {}
        read_keys = [k for k in keys if k != self.total]
        chunks = iter_chunks(
            self.source,
            self.chunksize,
            columns=read_keys + self.value_cols,
            fmt=self.fmt,
            text=read_keys if text else (),
        )
        for chunk in chunks:
            if not len(chunk):  # a header-only CSV still yields one empty chunk
                continue
            if self.total:
                chunk = chunk.assign(**{self.total: 0})
            self._check_keys(chunk, key_dtypes, text)
            # keys too: a CSV key column with no values is float64, as read_csv makes it
            for col in self.value_cols + ([] if text else read_keys):
                prev, now = seen_dtypes.get(col), chunk[col].dtype
                seen_dtypes[col] = now if prev is None else _common(prev, now)
            part = grouped.partial_numpy(chunk, keys, stats, layout)
            if part is None:
                casts = {c: _work_dtype(chunk[c].dtype, c, self.funcs[c]) for c in self.value_cols}
                casts = {c: t for c, t in casts.items() if chunk[c].dtype != t}
                part = grouped.partial_pandas(chunk.astype(casts) if casts else chunk, keys, stats)
            if not len(part):  # every key of the chunk is missing
                continue
            buffer.append(part)
            buffered += len(part)
            if buffered > limit:  # amortised: compact when the buffer doubles
                buffer = [grouped.merge(pd.concat(buffer), len(keys), stats)]
                buffered = len(buffer[0])
                limit = max(limit, 2 * buffered)
        merged = grouped.merge(pd.concat(buffer), len(keys), stats) if buffer else None
        return merged, seen_dtypes

    def _check_keys(self, chunk: pd.DataFrame, key_dtypes: dict[Any, Any], text: bool) -> None:
        for key in self.keys:
            if text:  # read_csv types a column with a missing value apart (ints -> float64)
                self.missing_keys[key] = self.missing_keys.get(key, False) or bool(
                    chunk[key].isna().any()
                )
            dtype = chunk[key].dtype
            first = key_dtypes.setdefault(key, dtype)
            if dtype == first:
                continue
            if isinstance(self.source, str | Path) and (
                source_format(self.source, self.fmt) == "csv"
            ):
                raise _KeyTypeChanged
            raise TypeError(
                f"chunked_agg: key column {key!r} is {first} in one part of "
                f"{str(self.source)!r} and {dtype} in another; write the parts with one "
                f"type (e.g. df[{key!r}].astype(str)) or aggregate them apart"
            )


def _typed_keys(
    merged: pd.DataFrame, keys: list[Hashable], missing: dict[Hashable, bool]
) -> pd.DataFrame:
    """Replace text keys by the values read_csv gives the whole column (then merge again)."""
    levels = []
    for i, key in enumerate(keys):
        texts = merged.index.get_level_values(i)
        unique = pd.Index(texts.unique())
        levels.append(
            _read_csv_types(unique, missing.get(key, False)).take(unique.get_indexer(texts))
        )
    out = merged.copy()
    out.index = levels[0] if len(levels) == 1 else pd.MultiIndex.from_arrays(levels, names=keys)
    out.index.name = keys[0] if len(levels) == 1 else None
    return out


def _read_csv_types(texts: pd.Index, had_missing: bool) -> pd.Index:
    """*texts* typed by read_csv as one column (with an empty field when one was missing)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["k"])
    writer.writerows([t] for t in texts)
    if had_missing:
        writer.writerow([""])
    typed = pd.read_csv(io.StringIO(buf.getvalue()))["k"]
    return pd.Index(typed.iloc[: len(texts)])


def _empty_totals(expected: pd.DataFrame, spec: list[tuple[Any, str]]) -> pd.DataFrame:
    """The totals of no rows: count and sum 0, the other aggregations missing."""
    columns = {}
    for (_, func), name, dtype in zip(spec, expected.columns, expected.dtypes, strict=True):
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        if func in ("count", "sum") and numeric:
            columns[name] = pd.Series([0]).astype(dtype)
        elif isinstance(dtype, np.dtype) and dtype.kind in "iub":
            columns[name] = pd.Series([np.nan])
        else:
            columns[name] = pd.Series([None], dtype=dtype)
    out = pd.DataFrame(columns)
    out.columns = expected.columns
    return out


def _common(a: Any, b: Any) -> Any:
    if a == b:
        return a
    return (
        pd.api.types.pandas_dtype(np.result_type(a, b))
        if all(isinstance(t, np.dtype) for t in (a, b))
        else object
    )

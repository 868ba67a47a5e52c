"""Chunked group-by aggregation whose result equals a full ``groupby().agg()``.

The tutorial's code (``suites/memory/memory_tutorial.py``) aggregates chunk by chunk
and concatenates the per-chunk means (400 rows for 100 chunks x 4 groups); averaging
those was off by 7e-3 on 1M customer rows (2026-11-26), and
``suites/memory/test_memory_chunked.py`` checks that it misses.  Here each
chunk is reduced to sufficient statistics per group -- count ``n``, sum ``s``,
sum of squared deviations ``m2``, min and max -- and the statistics are merged
exactly: sums add, and the deviations merge with Chan, Golub and LeVeque's
parallel formula, generalised to k parts (the parallel-axis theorem)::

    n = sum(n_k)    mean = sum(s_k) / n    m2 = sum(m2_k) + sum(n_k * (mean_k - mean)**2)

which never subtracts two large sums of squares, so it is as stable as Welford.
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


def _masked(dtype: Any) -> bool:
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb"


def _floats(x: pd.Series) -> np.ndarray:
    return np.asarray(x.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _partial(
    chunk: pd.DataFrame, keys: list[Hashable], stats: dict[Any, list[str]]
) -> pd.DataFrame:
    """Per-group statistics of one chunk; columns ``(stat, column)``.

    One grouper, one cython reduction per statistic over all columns at once:
    per-column calls cost ~8 ms a chunk, which dominates at 10k-row chunks (2026-11-26,
    a 2-core CI VM; ``suites/memory/test_memory_chunked.py`` times both chunk sizes).
    """
    grouped = chunk.groupby(keys, sort=False, observed=True, dropna=True)
    n = grouped[list(stats)].count()
    parts = {"n": n}
    for stat in ("sum", "min", "max"):
        cols = [c for c, wanted in stats.items() if stat in wanted]
        if cols:
            parts[stat] = getattr(grouped[cols], stat)()
    cols = [c for c, wanted in stats.items() if "fsum" in wanted]
    if cols:
        floats = {c: "Float64" if _masked(chunk[c].dtype) else np.float64 for c in cols}
        fchunk = chunk[[*keys, *cols]].astype(floats)
        parts["fsum"] = fchunk.groupby(keys, sort=False, observed=True, dropna=True)[cols].sum()
    cols = [c for c, wanted in stats.items() if "m2" in wanted]
    if cols:
        counts = n[cols].to_numpy(dtype=np.float64)
        var = grouped[cols].var(ddof=1).to_numpy(dtype=np.float64, na_value=np.nan)
        m2 = np.where(counts > 1, var * (counts - 1), 0.0)
        parts["m2"] = pd.DataFrame(m2, index=n.index, columns=cols)
    return pd.concat(parts, axis=1)


def _group_codes(chunk: pd.DataFrame, keys: list[Hashable]) -> tuple[np.ndarray, pd.Index]:
    """Group number of each row (-1: a key is missing) and the key of each group."""
    if len(keys) == 1:
        codes, uniques = pd.factorize(chunk[keys[0]], use_na_sentinel=True)
        return codes, pd.Index(uniques, name=keys[0])
    combined = np.zeros(len(chunk), dtype=np.int64)
    levels = []
    for key in keys:
        codes, uniques = pd.factorize(chunk[key], use_na_sentinel=True)
        combined = np.where((combined < 0) | (codes < 0), -1, combined * len(uniques) + codes)
        # Renumber densely after each key: the plain product of the keys' counts passed
        # 2**63 (5 keys of 10,000 values) and wrapped negative, read as "key missing".
        # Dense, combined < rows and the next product < rows**2: no overflow below 3e9 rows.
        valid = combined >= 0
        combined[valid] = pd.factorize(combined[valid])[0]
        levels.append((codes, uniques))
    codes = combined.astype(np.intp)
    _, first = np.unique(codes, return_index=True)
    first = first[codes[first] >= 0]
    arrays = [pd.Index(u).take(c[first]) for c, u in levels]
    return codes, pd.MultiIndex.from_arrays(arrays, names=keys)


def _partial_numpy(
    chunk: pd.DataFrame, keys: list[Hashable], stats: dict[Any, list[str]], columns: pd.MultiIndex
) -> pd.DataFrame | None:
    """:func:`_partial` for numpy numeric columns: sort once, reduce with ``reduceat``.

    pandas' groupby costs ~7 ms of fixed overhead per chunk; this costs ~0.3 ms, so
    10k-row chunks run at nearly the speed of 100k-row ones (2026-11-26, a 2-core CI
    VM; ``suites/memory/test_memory_chunked.py::test_chunked_agg_frame``).  None: use
    pandas.
    """
    arrays = {c: chunk[c].to_numpy() for c in stats}
    if not all(isinstance(v.dtype, np.dtype) and v.dtype.kind in "biuf" for v in arrays.values()):
        return None
    codes, index = _group_codes(chunk, keys)
    # numpy sorts 16-bit keys with a radix sort: 7x faster than int64 codes (2026-11-26)
    narrow = codes.astype(np.int16) if len(index) < 2**15 else codes
    order = np.argsort(narrow, kind="stable")
    order = order[codes[order] >= 0]
    if not len(order):
        return pd.DataFrame(columns=columns)
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    parts: dict[tuple[str, Any], np.ndarray] = {}
    for col, values in arrays.items():
        wanted = stats[col]
        kind = values.dtype.kind
        x = values[order].astype(
            np.uint64 if kind == "u" else np.int64 if kind in "ib" else np.float64
        )
        valid = ~np.isnan(x) if kind == "f" else None
        n = np.add.reduceat(valid.astype(np.int64), starts) if valid is not None else sizes
        parts[("n", col)] = n
        filled = x if valid is None else np.where(valid, x, 0.0)
        if "sum" in wanted:
            with np.errstate(invalid="ignore"):  # inf - inf is NaN here, as in pandas
                parts[("sum", col)] = np.add.reduceat(filled, starts)
        if "fsum" in wanted:
            if kind == "f" and "sum" in wanted:
                total = parts[("sum", col)]
            else:
                with np.errstate(invalid="ignore"):
                    total = np.add.reduceat(filled.astype(np.float64, copy=False), starts)
            parts[("fsum", col)] = total
        if "min" in wanted:
            parts[("min", col)] = (np.fmin if kind == "f" else np.minimum).reduceat(x, starts)
        if "max" in wanted:
            parts[("max", col)] = (np.fmax if kind == "f" else np.maximum).reduceat(x, starts)
        if "m2" in wanted:
            with np.errstate(invalid="ignore", divide="ignore"):
                gaps = x - np.repeat(total / n, sizes)  # two-pass: as exact as Welford
            squares = gaps * gaps if valid is None else np.where(valid, gaps * gaps, 0.0)
            with np.errstate(invalid="ignore"):
                parts[("m2", col)] = np.add.reduceat(squares, starts)
    # Building the (stat, column) MultiIndex per chunk costs more than the sums.
    out = pd.DataFrame(
        {i: parts[c] for i, c in enumerate(columns)}, index=index.take(sorted_codes[starts])
    )
    out.columns = columns
    return out


def _partial_order(stats: dict[Any, list[str]]) -> list[tuple[str, Any]]:
    order = [("n", c) for c in stats]
    for stat in ("sum", "fsum", "min", "max", "m2"):
        order += [(stat, c) for c, wanted in stats.items() if stat in wanted]
    return order


def _merge(parts: pd.DataFrame, nkeys: int, stats: dict[Any, list[str]]) -> pd.DataFrame:
    """Merge partial statistics (rows may repeat a group) into one row per group."""
    levels = list(range(nkeys))
    grouped = parts.groupby(level=levels, sort=False, observed=True)
    stat_names = parts.columns.get_level_values(0)
    additive = [s for s in ("n", "sum", "fsum", "m2") if s in stat_names]
    out = {
        stat: _sum_keep_nan(parts[[c for c in parts.columns if c[0] == stat]], levels)
        for stat in additive
    }
    for stat in ("min", "max"):
        if stat in stat_names:
            out[stat] = getattr(grouped[[c for c in parts.columns if c[0] == stat]], stat)()
    merged = pd.concat(out.values(), axis=1)
    cols = [c for c, wanted in stats.items() if "m2" in wanted]
    if cols:
        spread = between_m2(
            parts["n"][cols], parts["fsum"][cols], merged["n"][cols], merged["fsum"][cols]
        )
        for col in cols:
            merged[("m2", col)] = merged[("m2", col)] + spread[col]
    return merged


def between_m2(
    counts: pd.DataFrame, sums: pd.DataFrame, n: pd.DataFrame, total: pd.DataFrame
) -> pd.DataFrame:
    """The term Chan's merge adds to the parts' summed M2: ``sum(n_k * (mean_k - mean)**2)``.

    The one implementation of the merge of grouped statistics: chunked aggregation
    merges chunks with it, and the distributed engines merge partitions
    (:func:`mlperf.distributed.common.combine_partials`).  A group's M2 (sum of
    squared deviations from its mean) is the sum of its parts' M2 plus this term.

    Parameters
    ----------
    counts, sums:
        Count and sum of each part, one row per part, indexed by the part's group
        key (a group's key repeats over its parts), one column per value column.
    n, total:
        Count and sum of each group (the parts' counts and sums added up), indexed
        by the group key, same columns.

    Returns
    -------
    pandas.DataFrame
        Per group (keys in order of first appearance), same columns; a part with no
        values adds nothing.
    """
    c = counts.to_numpy(dtype=np.float64)
    s = sums.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = pd.DataFrame(
            total.to_numpy(dtype=np.float64, na_value=np.nan) / n.to_numpy(dtype=np.float64),
            index=n.index,
        )
        gaps = s / c - mean.reindex(counts.index).to_numpy()
    spread = pd.DataFrame(
        np.where(c > 0, c * gaps * gaps, 0.0), index=counts.index, columns=counts.columns
    )
    return _sum_keep_nan(spread, list(range(counts.index.nlevels)))


def _sum_keep_nan(frame: pd.DataFrame, levels: list[int]) -> pd.DataFrame:
    """Per group, the sum of the parts; NaN when a part is NaN.

    A part is NaN only where its values were not finite (``inf - inf``: missing values
    never reach the parts), and pandas gives NaN there; a plain groupby sum would skip
    it and call the group's spread 0.0 (found by the cross-engine property).
    """
    grouped = frame.groupby(level=levels, sort=False, dropna=False)
    nan = frame.isna().groupby(level=levels, sort=False, dropna=False).any()
    return grouped.sum().mask(nan)


def _finish(
    merged: pd.DataFrame, spec: list[tuple[Any, str]], multi: bool, dtypes: pd.Series
) -> pd.DataFrame:
    merged = merged.sort_index()
    columns = {}
    for (col, func), dtype in zip(spec, dtypes, strict=True):
        n = merged[("n", col)]
        if func == "count":
            value = n
        elif func == "sum":
            value = merged[("sum", col)]
        elif func == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                value = pd.Series(_floats(merged[("fsum", col)]) / _floats(n), index=n.index)
        elif func in ("var", "std"):
            counts = _floats(n)
            with np.errstate(invalid="ignore", divide="ignore"):
                var = np.where(counts > 1, _floats(merged[("m2", col)]) / (counts - 1), np.nan)
            value = pd.Series(np.sqrt(var) if func == "std" else var, index=n.index)
        else:
            value = merged[(func, col)]
        columns[(col, func) if multi else col] = _cast_like_pandas(value, dtype)
    result = pd.DataFrame(columns, index=merged.index)
    if multi:
        result.columns = pd.MultiIndex.from_tuples(list(columns))
    return result


def _cast_like_pandas(value: pd.Series, dtype: Any) -> pd.Series:
    # pandas returns narrow integer sums in the input's type only when they fit.
    if pd.api.types.is_integer_dtype(dtype) and pd.api.types.is_integer_dtype(value.dtype):
        info = np.iinfo(getattr(dtype, "numpy_dtype", dtype))
        if (
            len(value)
            and value.count()
            and not (info.min <= int(value.min()) and int(value.max()) <= info.max)
        ):
            return value
    if value.dtype == dtype:
        return value
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(
        dtype, pd.CategoricalDtype | pd.StringDtype
    ):
        return value.astype(dtype)
    return value.astype(dtype) if not pd.api.types.is_bool_dtype(dtype) else value.astype(bool)


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
            merged = _merge(_typed_keys(merged, keys, job.missing_keys), len(keys), stats)
    probe = head.astype(seen_dtypes) if seen_dtypes else head
    expected = probe.groupby(keys).agg(dict(aggs)) if total else probe.groupby(by).agg(dict(aggs))
    if merged is None:
        return _empty_totals(expected, spec) if total else expected
    result = _finish(merged, spec, multi, expected.dtypes)
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
        layout = pd.MultiIndex.from_tuples(_partial_order(stats))
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
            part = _partial_numpy(chunk, keys, stats, layout)
            if part is None:
                casts = {c: _work_dtype(chunk[c].dtype, c, self.funcs[c]) for c in self.value_cols}
                casts = {c: t for c, t in casts.items() if chunk[c].dtype != t}
                part = _partial(chunk.astype(casts) if casts else chunk, keys, stats)
            if not len(part):  # every key of the chunk is missing
                continue
            buffer.append(part)
            buffered += len(part)
            if buffered > limit:  # amortised: compact when the buffer doubles
                buffer = [_merge(pd.concat(buffer), len(keys), stats)]
                buffered = len(buffer[0])
                limit = max(limit, 2 * buffered)
        merged = _merge(pd.concat(buffer), len(keys), stats) if buffer else None
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

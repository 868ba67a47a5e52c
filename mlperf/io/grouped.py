"""Per-group sufficient statistics of a chunk, and their exact merge.

Each chunk is reduced, per group, to sufficient statistics -- count ``n``, sum ``s``,
sum of squared deviations ``m2``, min and max -- held in a *partial*: a frame indexed
by the group key, one ``(stat, column)`` column each (``fsum`` is the float64 sum
behind mean, var and std).  A group may repeat over partials; they merge exactly:
sums add, and the deviations merge with Chan, Golub and LeVeque's parallel formula,
generalised to k parts (the parallel-axis theorem)::

    n = sum(n_k)    mean = sum(s_k) / n    m2 = sum(m2_k) + sum(n_k * (mean_k - mean)**2)

which never subtracts two large sums of squares, so it is as stable as Welford.
:func:`between_m2` is the one implementation of the last term, shared by
:mod:`mlperf.io.chunked` (chunks) and the distributed engines (partitions).

*stats*, in every function here, maps each value column to the statistics it needs
(``{"age": ["fsum", "m2"]}``), as :func:`mlperf.io.chunked.chunked_agg` derives
them from its aggregations.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "between_m2",
    "finish",
    "merge",
    "partial_numpy",
    "partial_order",
    "partial_pandas",
]


def _masked(dtype: Any) -> bool:
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iufb"


def _floats(x: pd.Series) -> np.ndarray:
    return np.asarray(x.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def partial_pandas(
    chunk: pd.DataFrame, keys: list[Hashable], stats: dict[Any, list[str]]
) -> pd.DataFrame:
    """Per-group statistics of one chunk; columns ``(stat, column)``.

    Parameters
    ----------
    chunk:
        Rows whose numeric value columns are widened to 64 bits.
    keys:
        The key columns; rows with a missing key are dropped.
    stats:
        The statistics each value column needs.

    Returns
    -------
    pandas.DataFrame
        A partial: one row per group of the chunk (in order of first appearance).

    Notes
    -----
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


def partial_numpy(
    chunk: pd.DataFrame, keys: list[Hashable], stats: dict[Any, list[str]], columns: pd.MultiIndex
) -> pd.DataFrame | None:
    """:func:`partial_pandas` for numpy numeric columns: sort once, reduce with ``reduceat``.

    pandas' groupby costs ~7 ms of fixed overhead per chunk; this costs ~0.3 ms, so
    10k-row chunks run at nearly the speed of 100k-row ones (2026-11-26, a 2-core CI
    VM; ``suites/memory/test_memory_chunked.py::test_chunked_agg_frame``).

    Parameters
    ----------
    chunk, keys, stats:
        As for :func:`partial_pandas`; the value columns keep their own dtypes.
    columns:
        The partial's columns, ``MultiIndex.from_tuples(partial_order(stats))``.

    Returns
    -------
    pandas.DataFrame or None
        The partial, rows sorted by group; None where a value column is not a numpy
        bool, integer or float column: use :func:`partial_pandas`.
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


def partial_order(stats: dict[Any, list[str]]) -> list[tuple[str, Any]]:
    """The ``(stat, column)`` columns of a partial of *stats*, in their order.

    Parameters
    ----------
    stats:
        The statistics each value column needs.

    Returns
    -------
    list of tuple
        ``("n", column)`` for every column, then the other statistics.
    """
    order = [("n", c) for c in stats]
    for stat in ("sum", "fsum", "min", "max", "m2"):
        order += [(stat, c) for c, wanted in stats.items() if stat in wanted]
    return order


def merge(parts: pd.DataFrame, nkeys: int, stats: dict[Any, list[str]]) -> pd.DataFrame:
    """Merge partial statistics (rows may repeat a group) into one row per group.

    Parameters
    ----------
    parts:
        Partials stacked (``pandas.concat``); a group's key may repeat.
    nkeys:
        How many index levels are the group key.
    stats:
        The statistics each value column needs.

    Returns
    -------
    pandas.DataFrame
        A partial with one row per group (in order of first appearance); it merges
        again with further partials.
    """
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


def finish(
    merged: pd.DataFrame, spec: list[tuple[Any, str]], multi: bool, dtypes: pd.Series
) -> pd.DataFrame:
    """The aggregations of *spec*, from merged statistics, as pandas would give them.

    Parameters
    ----------
    merged:
        A partial with one row per group (:func:`merge`).
    spec:
        ``(column, func)`` per result column, in order.
    multi:
        Whether the result's columns are a ``(column, func)`` MultiIndex.
    dtypes:
        The dtype pandas gives each result column, in the order of *spec*.

    Returns
    -------
    pandas.DataFrame
        One row per group, sorted by key; var and std with ddof=1.
    """
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

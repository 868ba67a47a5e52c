"""File formats: save, load, what each one changes, and how fast it is.

Every entry of :data:`FORMATS` declares what it changes about a frame, and
implements that declaration as :meth:`Format.expected`: for any frame ``df`` the
format accepts, ``load(save(df))`` equals ``fmt.expected(df)`` exactly (dtype
and value, by :func:`frames_equal`).  A change that is not declared is a bug; a
format may declare a change of dtype but never of value: a loss of rows, columns or
values is refused at save time instead (:meth:`Format.refusal` says which column and
value, and what to use).  The Hypothesis suite in ``suites/io`` checks this.

Unpickling executes code, so :func:`load` unpickles only bytes this process wrote
(their SHA-256 is kept in memory; any other file is refused), and refuses an HDF5
file that would make PyTables unpickle anything.  Corrupt or truncated files
(CSV included, even cut at a row boundary) raise :class:`FormatError` naming the
file and the format.

Streaming aggregation over CSV and Parquet is :func:`mlperf.io.chunked.chunked_agg`,
re-exported here.

The package: :mod:`~mlperf.io.formats` (the registry: writers, readers, refusals),
:mod:`~mlperf.io.expect` (each format's declared changes), :mod:`~mlperf.io.h5columns`
(column-wise HDF5 with h5py), :mod:`~mlperf.io.hdf_guard` (what would make PyTables
unpickle), :mod:`~mlperf.io.atomic` (whole files or none), :mod:`~mlperf.io.equal`
(exact frame equality), :mod:`~mlperf.io.sources` (a frame, CSV or Parquet read in
bounded chunks), :mod:`~mlperf.io.chunked` (exact group-by over those chunks) and
:mod:`~mlperf.io.grouped` (the per-group statistics it merges).
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlperf._optional import require
from mlperf.io.atomic import write_atomically
from mlperf.io.chunked import chunked_agg, iter_chunks
from mlperf.io.equal import difference, frames_equal
from mlperf.io.formats import FORMATS, Format, FormatError

__all__ = [
    "FORMATS",
    "Format",
    "FormatError",
    "chunked_agg",
    "compare_formats",
    "difference",
    "frames_equal",
    "iter_chunks",
    "load",
    "plot_formats",
    "roundtrip_report",
    "save",
]


def _spec(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def save(df: pd.DataFrame, path: str | Path, fmt: str) -> Path:
    """Write *df* to *path* in format *fmt* (a key of :data:`FORMATS`), atomically.

    The file is written without a name (Linux; elsewhere under a unique hidden
    name) and linked into place once complete: a crash or kill never leaves a
    truncated file under the final name, and threads or processes saving to one
    path leave one of their frames whole (:mod:`mlperf.io.atomic`).

    Raises
    ------
    ValueError
        *fmt* is unknown, or the format would lose rows or columns of *df*
        (:meth:`Format.refusal` says why and what to do).
    """
    spec = _spec(fmt)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"save: df must be a pandas DataFrame; got {type(df).__name__!r}")
    if reason := spec.refusal(df):
        raise ValueError(f"save: {spec.label} cannot store this frame: {reason}")
    path = Path(path).resolve()
    write_atomically(path, lambda fh: spec.write(df, fh))
    return path


def load(path: str | Path, fmt: str) -> pd.DataFrame:
    """Read a frame written in format *fmt*.

    Raises
    ------
    FileNotFoundError
        *path* does not exist.
    FormatError
        The file is truncated or corrupt; (Pickle) this process did not write it, or
        it changed since; (HDF5 table) reading it would unpickle something; (CSV) its
        last row ends with CRLF -- cut at a row boundary, or written by another
        program (read that with ``pandas.read_csv``).  The message names the file
        and the format.
    """
    spec = _spec(fmt)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: {str(path)!r} does not exist")
    try:
        return spec.read(path)
    except (MemoryError, ImportError):
        raise
    except FormatError as exc:  # the reader's own check: it says what is wrong
        raise FormatError(f"load: {str(path)!r} ({spec.label}): {exc}") from None
    except Exception as exc:  # every library raises its own type for a bad file
        raise FormatError(
            f"load: {str(path)!r} is not a readable {spec.label} file "
            f"({type(exc).__name__}: {exc}); it may be truncated or corrupt: "
            f"write it again with save(df, path, {fmt!r})"
        ) from exc


def _same_column(a: pd.Series, b: pd.Series) -> bool:
    """Same values whatever the dtype (int8 1 == int64 1, category 'A' == str 'A')."""
    if len(a) != len(b):
        return False
    na_a, na_b = a.isna().to_numpy(), b.isna().to_numpy()
    if not np.array_equal(na_a, na_b):
        return False
    va, vb = a.to_numpy(dtype=object)[~na_a], b.to_numpy(dtype=object)[~na_b]
    return all(x == y for x, y in zip(va, vb, strict=True))


def roundtrip_report(
    df: pd.DataFrame, formats: Iterable[str] | None = None, directory: str | Path | None = None
) -> pd.DataFrame:
    """Which dtypes and values survive a round trip through each format, column by column.

    Returns
    -------
    pandas.DataFrame
        One row per (format, column): ``format, position, column, dtype_before,
        dtype_after, dtype_kept, values_kept, as_declared`` (the column equals
        what the format declares), ``refused`` (why the format refuses *df*).
    """
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        for name in formats or FORMATS:
            spec = _spec(name)
            if reason := spec.refusal(df):
                rows.append({"format": name, "refused": reason})
                continue
            out = load(save(df, Path(tmp) / f"data{spec.suffix}", name), name)
            expected = spec.expected(df)
            for i in range(df.shape[1]):
                a, b = df.iloc[:, i], out.iloc[:, i]
                rows.append(
                    {
                        "format": name,
                        "position": i,
                        "column": df.columns[i],
                        "dtype_before": str(a.dtype),
                        "dtype_after": str(b.dtype),
                        "dtype_kept": a.dtype == b.dtype,
                        "values_kept": _same_column(a, b),
                        "as_declared": frames_equal(expected.iloc[:, [i]], out.iloc[:, [i]]),
                        "refused": None,
                    }
                )
    return pd.DataFrame(rows)


def compare_formats(
    df: pd.DataFrame,
    repeat: int = 3,
    formats: Iterable[str] | None = None,
    directory: str | Path | None = None,
) -> pd.DataFrame:
    """Time saving and loading *df* in each format (median of *repeat* runs).

    Each format first saves and loads ten rows untimed, so that its imports and
    thread pools are not counted against the first run.

    Returns
    -------
    pandas.DataFrame
        Indexed by format: ``label, save_s, load_s, load_cpu_s`` (process CPU
        time: steadier on a busy machine), ``load_speedup_vs_csv`` and
        ``load_cpu_speedup_vs_csv`` (CSV's time / this format's, same run),
        ``bytes, exact`` (the frame came back exactly), ``as_declared`` (exactly
        as declared) and ``changes``.  Formats that refuse *df* are left out.
    """
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise ValueError(f"compare_formats: repeat must be a positive integer; got {repeat!r}")
    rows = []
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        for name in formats or FORMATS:
            spec = _spec(name)
            if spec.refusal(df):
                continue
            path = Path(tmp) / f"data{spec.suffix}"
            # untimed: the first call of a format pays its imports and thread pools
            load(save(df.iloc[:10], path, name), name)
            saves, loads, cpus = [], [], []
            for _ in range(repeat):
                gc.collect()
                t0 = time.perf_counter()
                save(df, path, name)
                saves.append(time.perf_counter() - t0)
                c0, t0 = time.process_time(), time.perf_counter()
                out = load(path, name)
                loads.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            rows.append(
                {
                    "format": name,
                    "label": spec.label,
                    "save_s": float(np.median(saves)),
                    "load_s": float(np.median(loads)),
                    "load_cpu_s": float(np.median(cpus)),
                    "bytes": path.stat().st_size,
                    "exact": frames_equal(df, out),
                    "as_declared": frames_equal(spec.expected(df), out),
                    "changes": "; ".join(spec.changes) or "none",
                }
            )
            path.unlink()
            del out
    table = pd.DataFrame(rows).set_index("format")
    if "csv" in table.index:
        table.insert(5, "load_speedup_vs_csv", table.at["csv", "load_s"] / table["load_s"])
        table.insert(
            6, "load_cpu_speedup_vs_csv", table.at["csv", "load_cpu_s"] / table["load_cpu_s"]
        )
    return table


def plot_formats(table: pd.DataFrame, path: str | Path) -> Path:
    """Draw the tutorial's three bar charts (save time, load time, file size) as a PNG.

    Parameters
    ----------
    table:
        The output of :func:`compare_formats`.
    path:
        Where to write the PNG.
    """
    require("matplotlib", "plot_formats")
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(15, 5))
    labels = table.get("label", table.index)
    panels = (
        ("save_s", "seconds (log scale)", "Save time", 1.0, True),
        ("load_s", "seconds (log scale)", "Load time", 1.0, True),
        ("bytes", "MB", "File size", 1e-6, False),
    )
    for ax, (col, ylabel, title, scale, log) in zip(fig.subplots(1, 3), panels, strict=True):
        ax.bar(list(labels), table[col] * scale)
        if log:
            ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title} ({len(table)} formats)")
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=100)
    return out

"""File formats: save, load, what each one changes, and how fast it is.

Every entry of :data:`FORMATS` declares what it changes about a frame, and
implements that declaration as :meth:`Format.expected`: for any frame ``df`` the
format accepts, ``load(save(df))`` equals ``fmt.expected(df)`` exactly (dtype
and value).  A change that is not declared is a bug; a loss of rows or columns is
never declared -- the format refuses the frame at save time instead
(:meth:`Format.refusal`).  The Hypothesis suite in ``suites/io`` checks this.

Pickle executes code while loading, so :func:`load` unpickles only files this
process wrote, with unchanged content (a SHA-256 per path kept in memory; a file
from anywhere else is refused).  Corrupt or truncated files raise
:class:`FormatError` naming the file and the format.

Streaming aggregation over CSV and Parquet is :func:`mlperf.chunked.chunked_agg`,
re-exported here.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import hmac
import os
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlperf import _h5columns
from mlperf._formats import (
    expect_arrow,
    expect_csv,
    expect_hdf,
    expect_json,
    expect_parquet,
    json_floats,
)
from mlperf._optional import require
from mlperf.chunked import chunked_agg, iter_chunks

__all__ = [
    "FORMATS",
    "Format",
    "FormatError",
    "chunked_agg",
    "compare_formats",
    "frames_equal",
    "iter_chunks",
    "load",
    "plot_formats",
    "roundtrip_report",
    "save",
]


class FormatError(ValueError):
    """A file cannot be loaded (corrupt, truncated, or a pickle this process did not write)."""


@dataclass(frozen=True)
class Format:
    """One file format: how to write and read it, and what it changes."""

    name: str
    label: str
    suffix: str
    write: Callable[[pd.DataFrame, Path], None]
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


def _json_refuses(df: pd.DataFrame) -> str | None:
    if df.shape[1] == 0:
        return "the table schema of a frame with no columns does not keep its row index"
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


def _csv_write(df: pd.DataFrame, path: Path) -> None:
    # Quoting every text field keeps " " and "a\rb" intact (pandas leaves "\r" unquoted).
    df.to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


def _csv_read(path: Path) -> pd.DataFrame:
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                raise FormatError("the file ends mid-row (no final newline): truncated")
    # Only an empty field is missing: "NA", "null" and "None" stay text.
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


_WRITTEN: dict[Path, bytes] = {}  # pickle files this process wrote -> SHA-256 of their bytes


def _pickle_write(df: pd.DataFrame, path: Path) -> None:
    data = pickle.dumps(df, protocol=5)
    path.write_bytes(data)
    _WRITTEN[path] = hashlib.sha256(data).digest()


def _pickle_read(path: Path) -> pd.DataFrame:
    digest = _WRITTEN.get(path.resolve())
    if digest is None:
        raise FormatError(
            "refusing to unpickle a file this process did not write: unpickling runs "
            "arbitrary code; if you trust the file, read it with pandas.read_pickle yourself"
        )
    data = path.read_bytes()  # verify and unpickle the same bytes: no swap in between
    if not hmac.compare_digest(hashlib.sha256(data).digest(), digest):
        raise FormatError(
            "the file changed since this process wrote it (truncated, corrupt or replaced)"
        )
    frame = pickle.loads(data)  # content verified above
    if not isinstance(frame, pd.DataFrame):
        raise FormatError(f"the pickle holds a {type(frame).__name__}, not a DataFrame")
    return frame


def _hdf_write(df: pd.DataFrame, path: Path) -> None:
    require("tables", "the HDF5 (PyTables) format")
    df.to_hdf(path, key="data", format="table", mode="w")


def _hdf_read(path: Path) -> pd.DataFrame:
    require("tables", "the HDF5 (PyTables) format")
    return pd.read_hdf(path, key="data")


def _parquet(codec: str) -> Callable[[pd.DataFrame, Path], None]:
    def write(df: pd.DataFrame, path: Path) -> None:
        # Dictionary pages for text and categories only: a high-cardinality numeric
        # column starts in dictionary pages and falls back to plain ones mid-column,
        # which makes 1M customer rows 3% larger and twice as slow to load.
        text = [
            str(c)
            for c, t in df.dtypes.items()
            if isinstance(t, pd.CategoricalDtype | pd.StringDtype) or t == object
        ]
        df.to_parquet(path, compression=codec, use_dictionary=text)

    return write


def _feather(codec: str) -> Callable[[pd.DataFrame, Path], None]:
    return lambda df, path: df.to_feather(path, compression=codec)


def _json_write(df: pd.DataFrame, path: Path) -> None:
    # The table schema keeps dtypes and categories; 15 digits is the most to_json writes.
    df.to_json(path, orient="table", double_precision=15, date_unit="ns")


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
            "csv", "CSV", ".csv", _csv_write, _csv_read,
            (
                "int8/int16/int32 -> int64",
                "float32 -> float64 of its shortest decimal text (0.1f -> 0.1)",
                "category, object and datetime columns -> text; empty text and missing -> NaN",
                (
                    "text is typed again when read: all True/False -> bool (object if any "
                    "missing), all numbers -> int64/float64, no values -> float64 NaN"
                ),
                "a frame with no rows -> every column object",
            ),
            expect_csv, _also(_names(), _no_columns),
        ),
        Format(
            "parquet-snappy", "Parquet (snappy)", ".parquet", _parquet("snappy"), pd.read_parquet,
            (*_ARROW_CHANGES, _NO_CATEGORIES),
            expect_parquet, _also(_names(), _no_columns),
        ),
        Format(
            "parquet-zstd", "Parquet (zstd)", ".parquet", _parquet("zstd"), pd.read_parquet,
            (*_ARROW_CHANGES, _NO_CATEGORIES),
            expect_parquet, _also(_names(), _no_columns),
        ),
        Format(
            "feather", "Feather (uncompressed)", ".feather", _feather("uncompressed"),
            pd.read_feather, _ARROW_CHANGES, expect_arrow, _names(),
        ),
        Format(
            "feather-lz4", "Feather (lz4)", ".feather", _feather("lz4"), pd.read_feather,
            _ARROW_CHANGES, expect_arrow, _names(),
        ),
        Format(
            "hdf5-table", "HDF5 (PyTables table)", ".h5", _hdf_write, _hdf_read,
            (
                "RangeIndex -> int64 Index",
                _TEXT,
                "a text column with no values -> object NaN",
                "trailing NUL characters of text are dropped",
                "a category with no categories -> its (empty) categories become float64",
            ),
            expect_hdf, _also(_names(), _no_rows),
        ),
        Format(
            "h5py", "HDF5 (h5py, column-wise)", ".h5", _h5columns.write, _h5columns.read,
            (), lambda df: df, lambda df: None,
        ),
        Format("pickle", "Pickle", ".pkl", _pickle_write, _pickle_read, (), lambda df: df, lambda df: None),
        Format(
            "json", "JSON (table schema)", ".json", _json_write, _json_read,
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
                "the RangeIndex of a one-row frame -> int64 Index",
            ),
            expect_json, _also(_names(), _json_refuses),
        ),
    )
}  # fmt: skip


def _spec(fmt: str) -> Format:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(FORMATS)}")
    return FORMATS[fmt]


def save(df: pd.DataFrame, path: str | Path, fmt: str) -> Path:
    """Write *df* to *path* in format *fmt* (a key of :data:`FORMATS`), atomically.

    The file is written next to *path* and renamed into place, so a crash never
    leaves a truncated file under the final name.

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        spec.write(df, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    if fmt == "pickle":
        _WRITTEN[path] = _WRITTEN.pop(tmp)
    return path


def load(path: str | Path, fmt: str) -> pd.DataFrame:
    """Read a frame written in format *fmt*.

    Raises
    ------
    FileNotFoundError
        *path* does not exist.
    FormatError
        The file is truncated or corrupt, or (Pickle) was not written by this
        process or changed since; the message names the file and the format.
    """
    spec = _spec(fmt)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load: {str(path)!r} does not exist")
    try:
        return spec.read(path)
    except (MemoryError, ImportError):
        raise
    except Exception as exc:  # every library raises its own type for a bad file
        raise FormatError(
            f"load: {str(path)!r} is not a readable {spec.label} file "
            f"({type(exc).__name__}: {exc}); it may be truncated or corrupt: "
            f"write it again with save(df, path, {fmt!r})"
        ) from exc


def frames_equal(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Exactly equal: values, missing markers, dtypes, index and column names."""
    if left.shape != right.shape or not left.dtypes.equals(right.dtypes):
        return False  # cheap: assert_frame_equal spends seconds describing a big mismatch
    try:
        pd.testing.assert_frame_equal(left, right, check_exact=True, check_index_type=True)
    except AssertionError:
        return False
    return True


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

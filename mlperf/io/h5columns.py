"""Column-wise HDF5 with h5py: one dataset per column, dtypes restored exactly.

Text is stored the way Arrow holds it -- one UTF-8 byte blob plus int64 offsets --
so a million strings are two numpy writes instead of a million variable-length
HDF5 strings.  Missing values keep their marker (NaN, None or pd.NA), categories
keep their categories and order, nullable columns keep their mask.  Columns are
stored by position (``c0``, ``c1``, ...) with their names in a JSON attribute, so
any JSON-able names, Unicode and duplicates included, survive.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa

from mlperf._optional import require

if TYPE_CHECKING:
    from pathlib import Path

    import h5py

__all__ = ["SCHEMA", "read", "unsupported", "write"]

SCHEMA = "mlperf.h5columns/1"
_MISSING = {1: np.nan, 2: None, 3: pd.NA}  # code -> the marker restored


def _missing_code(value: Any) -> int:
    if value is None:
        return 2
    if value is pd.NA:
        return 3
    return 1


def _is_text(col: pd.Series) -> bool:
    if isinstance(col.dtype, pd.StringDtype):
        return True
    return pd.api.types.is_object_dtype(col.dtype) and pd.api.types.infer_dtype(
        col, skipna=True
    ) in ("string", "empty")


def _write_text(group: h5py.Group, name: str, col: pd.Series) -> dict[str, Any]:
    missing = col.isna().to_numpy()
    values = col.to_numpy(dtype=object, na_value="") if missing.any() else col.to_numpy(object)
    if (
        isinstance(col.dtype, pd.StringDtype)
        and col.dtype.storage == "pyarrow"
        and not missing.any()
    ):
        arr = pa.array(col.array)
    else:
        arr = pa.array(values, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.large_string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[
        arr.offset : arr.offset + len(arr) + 1
    ]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    group.create_dataset(f"{name}.offsets", data=offsets - offsets[0])
    group.create_dataset(f"{name}.data", data=data)
    meta: dict[str, Any] = {"enc": "text", "dtype": _dtype_meta(col.dtype)}
    if missing.any():
        codes = np.zeros(len(col), dtype=np.uint8)
        if pd.api.types.is_object_dtype(col.dtype):
            codes[missing] = [_missing_code(v) for v in col.to_numpy(object)[missing]]
        else:
            codes[missing] = 1
        group.create_dataset(f"{name}.missing", data=codes)
    return meta


def _dtype_meta(dtype: Any) -> dict[str, Any]:
    if isinstance(dtype, pd.StringDtype):
        return {
            "kind": "string",
            "storage": dtype.storage,
            "na": "nan" if dtype.na_value is not pd.NA else "NA",
        }
    return {"kind": "object"}


def _read_text(group: h5py.Group, name: str, meta: dict[str, Any], n: int) -> pd.Series:
    offsets = group[f"{name}.offsets"][()]
    data = group[f"{name}.data"][()]
    codes = group[f"{name}.missing"][()] if f"{name}.missing" in group else None
    arr = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))
    dm = meta["dtype"]
    if dm["kind"] == "string":
        na = np.nan if dm["na"] == "nan" else pd.NA
        dtype = pd.StringDtype(storage=dm["storage"], na_value=na)
        out = pd.Series(pd.array(arr.to_numpy(zero_copy_only=False), dtype=dtype))
        if codes is not None:
            out[codes > 0] = na
        return out
    values = arr.to_numpy(zero_copy_only=False).astype(object)
    if codes is not None:
        for code, marker in _MISSING.items():
            values[codes == code] = marker
    return pd.Series(values, dtype=object)


def _write_column(group: h5py.Group, name: str, col: pd.Series) -> dict[str, Any]:
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = pd.Series(dtype.categories)
        sub = group.create_group(f"{name}.categories")
        return {
            "enc": "category",
            "ordered": bool(dtype.ordered),
            "codes": _write_numpy(group, name, col.cat.codes.to_numpy()),
            "categories": _write_column(sub, "values", cats),
            "n_categories": len(cats),
        }
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and hasattr(col.array, "_mask"):
        arr = col.array
        mask = np.asarray(arr.isna())
        group.create_dataset(f"{name}.mask", data=mask)
        fill = False if dtype.kind == "b" else 0
        _write_numpy(group, name, arr.to_numpy(dtype=dtype.numpy_dtype, na_value=fill))
        return {"enc": "masked", "dtype": str(dtype)}
    if isinstance(dtype, np.dtype) and dtype.kind in "biufcmM":
        return {"enc": "numpy", "dtype": _write_numpy(group, name, col.to_numpy())}
    if isinstance(dtype, pd.DatetimeTZDtype):
        # the UTC ticks in the dtype's unit; the zone rides along in the dtype's name
        group.create_dataset(name, data=col.array.asi8)
        return {"enc": "datetimetz", "dtype": str(dtype)}
    if _is_text(col):
        return _write_text(group, name, col)
    raise TypeError(f"save: the h5py format cannot store column {col.name!r}: {unsupported(col)}")


def unsupported(col: pd.Series) -> str | None:
    """Why :func:`write` cannot store *col*, or None."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return unsupported(pd.Series(dtype.categories))
    if (
        (isinstance(dtype, np.dtype) and dtype.kind in "biufcmM")
        or isinstance(dtype, pd.DatetimeTZDtype)
        or (isinstance(dtype, pd.api.extensions.ExtensionDtype) and hasattr(col.array, "_mask"))
        or _is_text(col)
    ):
        return None
    return (
        f"its dtype {dtype} (only numbers, booleans, datetimes, timedeltas, text and their "
        f"nullable and category forms are stored); convert it or use fmt='pickle'"
    )


def _write_numpy(group: h5py.Group, name: str, values: np.ndarray) -> str:
    # HDF5 has no datetime type: keep the int64 ticks and the unit in the metadata.
    stored = values.view(np.int64) if values.dtype.kind in "mM" else values
    group.create_dataset(name, data=stored)
    return str(values.dtype)


def _read_column(group: h5py.Group, name: str, meta: dict[str, Any], n: int) -> pd.Series:
    enc = meta["enc"]
    if enc == "numpy":
        values = group[name][()]
        dtype = np.dtype(meta["dtype"])
        return pd.Series(
            values.view(dtype) if dtype.kind in "mM" else values.astype(dtype, copy=False)
        )
    if enc == "datetimetz":
        dtype = pd.api.types.pandas_dtype(meta["dtype"])
        ticks = group[name][()].view(f"datetime64[{dtype.unit}]")
        return pd.Series(ticks).dt.tz_localize("UTC").dt.tz_convert(dtype.tz).astype(dtype)
    if enc == "masked":
        data = group[name][()]
        mask = group[f"{name}.mask"][()]
        dtype = pd.api.types.pandas_dtype(meta["dtype"])
        return pd.Series(pd.array(data, dtype=dtype)).mask(mask)
    if enc == "category":
        codes = group[name][()]
        cats = _read_column(
            group[f"{name}.categories"], "values", meta["categories"], meta["n_categories"]
        )
        dtype = pd.CategoricalDtype(pd.Index(cats), ordered=meta["ordered"])
        return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype))
    if enc == "text":
        return _read_text(group, name, meta, n)
    raise ValueError(f"unknown column encoding {enc!r}")


def write(df: pd.DataFrame, path: Path | BinaryIO) -> None:
    """Write *df* to *path* (a path or a binary file object), one dataset per column."""
    h5py = require("h5py", "the h5py column-wise format")
    try:
        names = json.dumps(list(df.columns))
    except TypeError as exc:
        raise TypeError(
            f"save: the h5py format stores column names as JSON; {list(df.columns)!r} are not "
            f"JSON values; rename the columns to strings"
        ) from exc
    with h5py.File(path, "w") as f:
        cols = f.create_group("columns")
        meta = [_write_column(cols, f"c{i}", df.iloc[:, i]) for i in range(df.shape[1])]
        index = df.index
        if isinstance(index, pd.RangeIndex):
            index_meta: dict[str, Any] = {"enc": "range", "start": index.start, "step": index.step}
        else:
            index_meta = _write_column(f, "index", pd.Series(index.to_numpy(), dtype=index.dtype))
        f.attrs["schema"] = SCHEMA
        f.attrs["meta"] = json.dumps(
            {
                "n_rows": len(df),
                "names": json.loads(names),
                "range_columns": isinstance(df.columns, pd.RangeIndex),
                "columns_dtype": str(df.columns.dtype),
                "index_name": index.name if isinstance(index.name, str | int | None) else None,
                "index": index_meta,
                "columns": meta,
            }
        )


def read(path: Path) -> pd.DataFrame:
    """Read a frame written by :func:`write`."""
    h5py = require("h5py", "the h5py column-wise format")
    with h5py.File(path, "r") as f:
        if f.attrs.get("schema") != SCHEMA:
            raise ValueError(f"not an {SCHEMA} file (schema {f.attrs.get('schema')!r})")
        meta = json.loads(f.attrs["meta"])
        n = meta["n_rows"]
        cols = [_read_column(f["columns"], f"c{i}", m, n) for i, m in enumerate(meta["columns"])]
        im = meta["index"]
        if im["enc"] == "range":
            index: pd.Index = pd.RangeIndex(im["start"], im["start"] + im["step"] * n, im["step"])
        else:
            index = pd.Index(_read_column(f, "index", im, n))
    index.name = meta["index_name"]
    out = pd.concat(cols, axis=1, ignore_index=True) if cols else pd.DataFrame(index=range(n))
    out.index = index
    names = meta["names"]
    if meta["range_columns"]:
        out.columns = pd.RangeIndex(len(names))
    else:
        out.columns = pd.Index(names, dtype=pd.api.types.pandas_dtype(meta["columns_dtype"]))
    return out

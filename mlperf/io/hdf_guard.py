"""What in an HDF5 file would make PyTables unpickle -- and so run code -- while reading it.

PyTables unpickles (1) every attribute whose value is a byte string ending in
``b"."`` (its test for "maybe a pickle"), and (2) the rows of a VLArray of
``ObjectAtom`` (pandas' fixed format stores object columns that way).  pandas'
table format itself pickles some metadata into attributes (lists of column names;
an index's ``freq`` and time zone), so attributes cannot all be refused.  Instead,
:func:`unpickling_risk` reads every attribute with h5py, which never unpickles,
and unpickles each candidate with an unpickler that may build only plain data and
the few pandas and datetime types pandas writes there.  A file passes only if every
candidate unpickles that way: then PyTables, running the same bytes, calls nothing
else.  Object arrays are refused outright: save() never writes them.
"""

from __future__ import annotations

import io
import pickle
from typing import TYPE_CHECKING, Any

import numpy as np

from mlperf._optional import require

if TYPE_CHECKING:
    import h5py

__all__ = ["unpickling_risk"]

#: the globals pandas' table format pickles into attributes (an index's freq and tz)
_ALLOWED_MODULES = {"pandas._libs.tslibs.offsets"}
_ALLOWED = {
    ("datetime", "timezone"),
    ("datetime", "timedelta"),
    ("zoneinfo", "ZoneInfo"),
    ("zoneinfo._zoneinfo", "ZoneInfo"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("__builtin__", "set"),
    ("__builtin__", "frozenset"),
}


class _Refused(Exception):
    pass


class _DataOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (
            module in _ALLOWED_MODULES and name.isidentifier() and not name.startswith("_")
        ):
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {pid!r}")


def _candidates(value: Any) -> list[bytes]:
    """The byte strings of an attribute value that PyTables may unpickle."""
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if isinstance(value, bytes | np.bytes_):
        return [bytes(value)] if bytes(value).endswith(b".") else []
    if isinstance(value, np.ndarray) and value.dtype.kind in "OSU":
        return [b for v in value.ravel().tolist() for b in _candidates(v)]
    return []


def _attribute_risk(where: str, attrs: h5py.AttributeManager) -> str | None:
    for key in attrs:
        try:
            value = attrs[key]
        except (OSError, TypeError, ValueError):  # a type h5py cannot read: PyTables neither
            continue
        for data in _candidates(value):
            try:
                _DataOnly(io.BytesIO(data)).load()
            except _Refused as exc:
                return (
                    f"attribute {key!r} of {where!r} is a pickle that calls {exc} when "
                    f"unpickled, and PyTables would unpickle it while reading"
                )
            except Exception:  # noqa: BLE001 -- not a pickle: PyTables keeps the bytes
                continue
    return None


def unpickling_risk(image: bytes) -> str | None:
    """Why reading the HDF5 file *image* with PyTables would unpickle something, or None.

    Parameters
    ----------
    image:
        The whole file's bytes (the caller then reads these same bytes).

    Returns
    -------
    str or None
        A sentence naming the node and attribute, or None when the file is safe.
    """
    h5py = require("h5py", "checking HDF5 files before PyTables reads them")
    try:
        f = h5py.File(io.BytesIO(image), "r")
    except OSError:
        return None  # not HDF5 at all: PyTables fails on it without unpickling anything
    with f:
        found = [_attribute_risk("/", f.attrs)]

        def visit(name: str, node: Any) -> None:
            if found[-1] is not None:
                return
            pseudo = node.attrs.get("PSEUDOATOM") if "PSEUDOATOM" in node.attrs else None
            if isinstance(pseudo, bytes | np.bytes_) and bytes(pseudo) == b"object":
                found.append(
                    f"node {name!r} holds pickled Python objects (a PyTables object array, "
                    f"as pandas' fixed format writes object columns); save() never writes them"
                )
                return
            found.append(_attribute_risk(name, node.attrs))

        f.visititems(visit)
    return found[-1]

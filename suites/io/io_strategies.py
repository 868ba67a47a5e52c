"""Hypothesis strategies for frames that exercise every format's corner cases.

Every column kind pandas users meet: numpy numbers (each integer width, signed and
unsigned, drawn to their extremes), nullable numbers and booleans (``Int64``,
``UInt64``, ``Float64``, ``boolean``, with ``pd.NA``), naive and tz-aware datetimes
in several units, timedeltas, the three string dtypes, object text (Japanese,
separators, quotes, line breaks, missing-value and number look-alikes) and
categories of text and of numbers; 0 rows and 0 columns included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, indexes, range_indexes

__all__ = ["KINDS", "TEXT_POOL", "frames", "text"]

#: words that trip formats up: Unicode, separators, quotes, line breaks, missing-value and
#: boolean tokens, numbers written as text, whitespace
TEXT_POOL = (
    "東京",
    "大阪",
    "名古屋",
    "福岡",
    "日本語のテキスト、句読点。",
    "",
    " ",
    "a,b",
    'say "hi"',
    "line\nbreak",
    "cr\rhere",
    "crlf\r\n",
    "NA",
    "None",
    "null",
    "nan",
    "True",
    "false",
    "1",
    " 2",
    "-0",
    "1e5",
    "inf",
    "Infinity",
    "9007199254740993",
)

#: random text: letters (CJK included), marks, punctuation and spaces; no digits and no
#: control characters, so it is text to every reader (TEXT_POOL brings the rest)
text = st.one_of(
    st.none(),
    st.sampled_from(TEXT_POOL),
    st.text(st.characters(categories=("L", "M", "P", "Zs")), max_size=6),
)

_NUMPY = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
    "bool": np.bool_,
    "datetime": np.dtype("datetime64[ns]"),
    "datetime[us]": np.dtype("datetime64[us]"),
    "datetime[s]": np.dtype("datetime64[s]"),
    "timedelta": np.dtype("timedelta64[ns]"),
}
_NULLABLE_INT = {
    "Int8": (-(2**7), 2**7 - 1),
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt8": (0, 2**8 - 1),
    "UInt64": (0, 2**64 - 1),
}
#: time zones: a fixed one, one with daylight saving time, a fixed offset
_ZONES = ("UTC", "Asia/Tokyo", "America/New_York", "+05:30")
_UNITS = ("ns", "us", "ms", "s")
KINDS = (
    *_NUMPY,
    *_NULLABLE_INT,
    "Float32",
    "Float64",
    "boolean",
    "datetime-tz",
    "str",
    "string[python]",
    "string[pyarrow]",
    "object",
    "category",
    "category[int]",
)


def _extreme_ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Any integer in [lo, hi], with the bounds, 0, +-1 and +-(2**53 + 1) drawn often."""
    edges = [v for v in (lo, hi, 0, 1, -1, 2**53 + 1, -(2**53) - 1, 2**63 - 1) if lo <= v <= hi]
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def _column(name: str, kind: str) -> column:
    if kind in ("int64", "uint64"):
        info = np.iinfo(_NUMPY[kind])
        return column(name, elements=_extreme_ints(int(info.min), int(info.max)), dtype=object)
    if kind in _NUMPY:
        return column(name, dtype=_NUMPY[kind])
    if kind in _NULLABLE_INT:
        return column(name, elements=st.none() | _extreme_ints(*_NULLABLE_INT[kind]), dtype=object)
    if kind in ("Float32", "Float64"):
        width = 32 if kind == "Float32" else 64
        floats = st.floats(width=width, allow_nan=False)
        return column(name, elements=st.none() | floats, dtype=object)
    if kind == "boolean":
        return column(name, elements=st.none() | st.booleans(), dtype=object)
    if kind == "datetime-tz":  # nanoseconds since 1970 within pandas' range, or missing
        ns = st.integers(-(2**62), 2**62) | st.sampled_from([0, 1, -1, 1_700_000_000 * 10**9])
        return column(name, elements=st.none() | ns, dtype=object)
    if kind == "category[int]":  # few distinct values, some beyond float64's integers
        few = st.integers(-3, 3) | st.sampled_from([2**53 + 1, -(2**63)])
        return column(name, elements=st.none() | few, dtype=object)
    return column(name, elements=text, dtype=object)


def _finish(df: pd.DataFrame, kinds: list[str], draw: st.DrawFn) -> pd.DataFrame:
    for i, kind in enumerate(kinds):
        col = df.iloc[:, i]
        if kind in ("int64", "uint64"):
            out = col.astype(_NUMPY[kind])
        elif kind in _NULLABLE_INT or kind in ("Float32", "Float64", "boolean"):
            out = pd.Series(pd.array(col.tolist(), dtype=kind), index=col.index)
        elif kind == "datetime-tz":
            unit, zone = draw(st.sampled_from(_UNITS)), draw(st.sampled_from(_ZONES))
            ticks = pd.array(col.tolist(), dtype="Int64").to_numpy(
                "int64", na_value=np.iinfo(np.int64).min
            )
            naive = pd.Series(ticks.view("datetime64[ns]"), index=col.index)
            out = (
                naive.dt.tz_localize("UTC")
                .dt.tz_convert(zone)
                .astype(f"datetime64[{unit}, {zone}]")
            )
        elif kind in ("str", "string[python]", "string[pyarrow]"):
            out = col.astype(kind)
        elif kind == "category":
            out = col.astype("category")
        elif kind == "category[int]":
            out = col.astype("Int64").astype("category")
            if draw(st.booleans()):  # categories as numpy ints: no missing values then
                out = col.fillna(0).astype(np.int64).astype("category")
        else:
            continue
        df.isetitem(i, out)
    return df


@st.composite
def frames(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS, max_rows: int = 12) -> pd.DataFrame:
    """A frame of 0-6 columns of the given kinds, 0..max_rows rows, any int64 index."""
    chosen = draw(st.lists(st.sampled_from(kinds), min_size=0, max_size=6))
    cols = [_column(f"c{i}", kind) for i, kind in enumerate(chosen)]
    index = st.one_of(
        range_indexes(min_size=0, max_size=max_rows),
        # shuffled, repeated, evenly spaced: each format must keep it or refuse the frame
        indexes(elements=st.integers(-3, 3), dtype=np.int64, max_size=max_rows),
    )
    df = draw(data_frames(cols, index=index))
    return _finish(df, chosen, draw)

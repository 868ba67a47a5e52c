"""Hypothesis strategies for frames that exercise every format's corner cases."""

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
    "",
    " ",
    "a,b",
    'say "hi"',
    "line\nbreak",
    "cr\rhere",
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
    "float32": np.float32,
    "float64": np.float64,
    "bool": np.bool_,
    "datetime": np.dtype("datetime64[ns]"),
}
KINDS = (*_NUMPY, "str", "object", "category")


def _column(name: str, kind: str) -> column:
    if kind in _NUMPY:
        return column(name, dtype=_NUMPY[kind])
    return column(name, elements=text, dtype=object)


def _finish(df: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    for i, kind in enumerate(kinds):
        if kind == "str":
            df.isetitem(i, df.iloc[:, i].astype("str"))
        elif kind == "category":
            df.isetitem(i, df.iloc[:, i].astype("category"))
    return df


@st.composite
def frames(draw: st.DrawFn, kinds: tuple[str, ...] = KINDS, max_rows: int = 12) -> pd.DataFrame:
    """A frame of 1-6 columns of the given kinds, 0..max_rows rows, any int64 index."""
    chosen = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=6))
    cols = [_column(f"c{i}", kind) for i, kind in enumerate(chosen)]
    index = st.one_of(
        range_indexes(min_size=0, max_size=max_rows),
        # shuffled, repeated, evenly spaced: each format must keep it or refuse the frame
        indexes(elements=st.integers(-3, 3), dtype=np.int64, max_size=max_rows),
    )
    df = draw(data_frames(cols, index=index))
    return _finish(df, chosen)

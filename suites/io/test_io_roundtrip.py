"""Round-trip properties: every format reproduces a frame exactly, or exactly as declared.

Exactly means :func:`mlperf.io.difference` finds nothing: dtypes, values bit for bit
(-0.0 included), missing markers, index and column names.  A format that would
change a value refuses the frame at save time instead, with a sentence saying why.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from io_strategies import frames

from mlperf.io import FORMATS, difference, load, save

_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("fmt", list(FORMATS))
@_SETTINGS
@given(df=frames())
def test_round_trip_is_exact_or_declared(fmt: str, df: pd.DataFrame, tmp_path: Path) -> None:
    spec = FORMATS[fmt]
    path = tmp_path / f"frame{spec.suffix}"
    if reason := spec.refusal(df):
        with pytest.raises(ValueError, match="cannot store this frame") as info:
            save(df, path, fmt)
        assert reason in str(info.value)
        return
    out = load(save(df, path, fmt), fmt)
    expected = spec.expected(df)
    assert difference(out, expected) is None, (
        difference(out, expected),
        out.dtypes,
        expected.dtypes,
    )
    if not spec.changes:
        assert difference(out, df) is None, difference(out, df)

"""Round-trip properties: every format reproduces a frame exactly, or exactly as declared."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from io_strategies import frames
from pandas.testing import assert_frame_equal

from mlperf.io import FORMATS, load, save

_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.mark.parametrize("fmt", list(FORMATS))
@_SETTINGS
@given(df=frames())
def test_round_trip_is_exact_or_declared(fmt: str, df: pd.DataFrame, tmp_path: Path) -> None:
    spec = FORMATS[fmt]
    path = tmp_path / f"frame{spec.suffix}"
    if spec.refusal(df):
        with pytest.raises(ValueError, match="cannot store this frame"):
            save(df, path, fmt)
        return
    out = load(save(df, path, fmt), fmt)
    assert_frame_equal(out, spec.expected(df), check_exact=True, check_index_type=True)
    if not spec.changes:
        assert_frame_equal(out, df, check_exact=True, check_index_type=True)

"""Fixtures of the I/O suite.

Correctness mode (``--benchmark-disable``, ``make test``) runs every benchmark body
once on 100k customer rows; timed runs (``make bench``) use the 1M-row frame the
targets are stated for.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlperf.io import FORMATS, save


def timing(config: pytest.Config) -> bool:
    """True when benchmarks are timed (not --benchmark-disable)."""
    session = getattr(config, "_benchmarksession", None)
    return session is not None and not session.disabled


@pytest.fixture(scope="session")
def frame(request: pytest.FixtureRequest) -> pd.DataFrame:
    """``customers_1m`` when benchmarks are timed, else ``customers_100k``."""
    name = "customers_1m" if timing(request.config) else "customers_100k"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def saved(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``frame`` written once in every format (the load benchmarks read these)."""
    directory = tmp_path_factory.mktemp("formats")
    return {
        name: save(frame, directory / f"{name}{spec.suffix}", name)
        for name, spec in FORMATS.items()
    }

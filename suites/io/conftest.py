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


class SavedFiles:
    """``frame`` written once per format, for the load benchmarks.

    ``test_save`` leaves its last file here, so a full run writes each format
    once; a load benchmark run on its own writes the one it needs.
    """

    def __init__(self, frame: pd.DataFrame, directory: Path) -> None:
        self.frame, self.directory, self.done = frame, directory, set[str]()

    def path(self, fmt: str) -> Path:
        return self.directory / f"{fmt}{FORMATS[fmt].suffix}"

    def __getitem__(self, fmt: str) -> Path:
        if fmt not in self.done:
            save(self.frame, self.path(fmt), fmt)
            self.done.add(fmt)
        return self.path(fmt)


@pytest.fixture(scope="session")
def saved(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> SavedFiles:
    """Files of ``frame`` in each format, written at most once per session."""
    return SavedFiles(frame, tmp_path_factory.mktemp("formats"))

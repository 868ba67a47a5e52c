"""Fixtures of the memory suite: customer frames and CSV files.

Correctness mode (``--benchmark-disable``, ``make test``) runs every benchmark body
once on 100k rows; timed runs (``make bench``) use 1M rows, and 10M under ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from memory_helpers import timing, write_customers_csv


@pytest.fixture(scope="session")
def customers(request: pytest.FixtureRequest) -> pd.DataFrame:
    """``customers_1m`` when benchmarks are timed, else ``customers_100k``."""
    name = "customers_1m" if timing(request.config) else "customers_100k"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def customers_csv(request: pytest.FixtureRequest, mlperf_cache_dir: Path) -> Path:
    """The ``customers`` frame as a CSV file in the cache directory."""
    n = 1_000_000 if timing(request.config) else 100_000
    return write_customers_csv(mlperf_cache_dir / f"customers-{n}-seed42.csv", n)


@pytest.fixture(scope="session")
def customers_csv_10m(mlperf_cache_dir: Path) -> Path:
    """10M customer rows as CSV (~640 MB; written once, 1M rows at a time)."""
    return write_customers_csv(mlperf_cache_dir / "customers-10000000-seed42.csv", 10_000_000)

"""Fixtures of the distributed suite: one engine per session, comparison helpers, the report.

The engine fixtures (``spark``, ``dask_client``, ``ray_runtime``) come from the mlperf
plugin: they run locally unless SPARK_REMOTE / DASK_SCHEDULER_ADDRESS / RAY_ADDRESS
point at a cluster (the ``mlperf_cluster`` run of ``make test``).  Tests that use
one carry the engine's marker and ``xdist_group`` so that one xdist worker owns
each engine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dist_helpers import EngineTable


def pytest_configure(config: pytest.Config) -> None:
    # `make bench` and `make test-cluster` run with -p no:xdist, which then leaves
    # xdist_group unregistered and --strict-markers fails collection.
    config.addinivalue_line("markers", "xdist_group(name): run in the xdist worker owning name")


@pytest.fixture(scope="session")
def purchases_parquet(mlperf_cache_dir: Path) -> Any:
    """Factory: folder of Parquet files with *n_rows* purchases (written once, cached)."""
    from mlperf.data import write_purchases

    def make(n_rows: int) -> Path:
        folder = mlperf_cache_dir / f"purchases-parquet-{n_rows}"
        if not folder.exists():
            # Written aside and renamed whole: another xdist worker may read it meanwhile.
            tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            write_purchases(tmp, n_rows)
            try:
                tmp.rename(folder)
            except OSError:  # another worker renamed its copy first
                shutil.rmtree(tmp, ignore_errors=True)
        return folder

    return make


@pytest.fixture(scope="session")
def engine_table(mlperf_report_dir: Path) -> Iterator[EngineTable]:
    table = EngineTable()
    yield table
    table.write(mlperf_report_dir / "distributed")

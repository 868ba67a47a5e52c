"""The same jobs against real clusters: ``make test-cluster`` starts a Dask scheduler
with two worker processes, a Spark Connect server and a Ray head on 127.0.0.1
(``python -m mlperf.distributed.cluster up``), exports their addresses and runs
these with ``--mlperf-cluster``.  The session fixtures see the addresses and attach
to the clusters: the code path is the local one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from dist_helpers import assert_ray_requires_token, assert_summary_equal

from mlperf.data import make_purchases
from mlperf.distributed import cluster, common
from mlperf.distributed.network import listening_sockets, parse_address

N_ROWS = 5_000


@pytest.fixture(scope="module")
def purchases() -> Any:
    return make_purchases(N_ROWS, seed=11)


def _check_jobs(module: Any, purchases: Any, folder: Path, **session: Any) -> None:
    assert_summary_equal(
        module.region_summary(purchases, min_users=10, **session),
        common.region_summary(purchases, min_users=10),
        scale=1e3,
    )
    assert_summary_equal(
        module.region_summary(folder, **session), common.region_summary(folder), scale=1e3
    )
    # One forest is enough to prove the remote path; the leak checks run locally.
    honest = module.train_forest(purchases, n_trees=5, max_depth=4, **session)
    assert abs(honest.balanced_accuracy - 0.5) < 0.06, honest


@pytest.mark.mlperf_cluster
@pytest.mark.mlperf_spark
@pytest.mark.xdist_group("spark")
def test_spark_connect_cluster(spark: Any, purchases: Any, purchases_parquet: Any) -> None:
    from mlperf.distributed import spark as engine

    assert type(spark).__module__.startswith("pyspark.sql.connect"), type(spark)
    _check_jobs(engine, purchases, purchases_parquet(N_ROWS), session=spark)


@pytest.mark.mlperf_cluster
@pytest.mark.mlperf_dask
@pytest.mark.xdist_group("dask")
def test_dask_scheduler_cluster(dask_client: Any, purchases: Any, purchases_parquet: Any) -> None:
    from mlperf.distributed import dask as engine

    assert dask_client.scheduler.address == os.environ["DASK_SCHEDULER_ADDRESS"]
    assert len(dask_client.scheduler_info(n_workers=-1)["workers"]) == 2
    _check_jobs(engine, purchases, purchases_parquet(N_ROWS), session=dask_client)


@pytest.mark.mlperf_cluster
@pytest.mark.mlperf_ray
@pytest.mark.xdist_group("ray")
def test_ray_head_cluster(ray_runtime: Any, purchases: Any, purchases_parquet: Any) -> None:
    from mlperf.distributed import ray as engine

    assert ray_runtime.get_runtime_context().gcs_address == os.environ["RAY_ADDRESS"]
    _check_jobs(engine, purchases, purchases_parquet(N_ROWS))
    X, y = engine.make_tuning_data(1_000)
    tuned = engine.tune_forest(X, y, n_estimators=(5,), max_depth=(2, 6), n_steps=2)
    assert len(tuned.trials) == 2 and tuned.errors.empty
    assert tuned.best_config["max_depth"] == 6


@pytest.mark.mlperf_cluster
def test_cluster_listens_on_loopback_only() -> None:
    """Issue 14 item 1: every process of every service ``cluster up`` started (Dask
    scheduler and workers, the Spark Connect JVM, the Ray head's GCS, raylet, agents
    and workers) listens on 127.0.0.1 only."""
    found = cluster.processes(os.environ["MLPERF_CLUSTER_DIR"])
    assert set(found) == set(cluster.SERVICES) and all(found.values()), found
    sockets = listening_sockets(p for procs in found.values() for p in procs)
    ports = {s.port for s in sockets}
    for var, default in (("SPARK_REMOTE", 15002), ("DASK_SCHEDULER_ADDRESS", 8786)):
        assert parse_address(os.environ[var], default, func="test")[1] in ports, var
    assert parse_address(os.environ["RAY_ADDRESS"], 6379, func="test")[1] in ports
    assert [str(s) for s in sockets if not s.loopback] == []


@pytest.mark.mlperf_cluster
@pytest.mark.mlperf_ray
@pytest.mark.xdist_group("ray")
def test_ray_head_refuses_a_driver_without_the_token(ray_runtime: Any) -> None:
    assert_ray_requires_token(ray_runtime)

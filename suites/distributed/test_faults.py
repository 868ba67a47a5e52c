"""Faults each engine must survive with the exact answer (Ray's is in test_forest.py:
a trial that raises is reported while the others finish).

- Dask: a worker process is SIGKILLed while it computes; the scheduler reruns its
  tasks on the other worker (the nanny restarts the dead one) and the result is exact.
- Spark: a task fails on its first attempt; under ``local[2]`` the job fails, under
  ``local[2, 2]`` (maxFailures 2) Spark retries it and the result is exact.  That
  needs a SparkContext with another master, so it runs in its own process: one JVM
  holds one SparkContext and the suite's session stays untouched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dist_helpers import assert_summary_equal

from mlperf.data import make_purchases
from mlperf.distributed import common

N_PARTS, ROWS_PER_PART, PART_SECONDS = 8, 5_000, 0.6


def _slow_part(i: int) -> pd.DataFrame:
    time.sleep(PART_SECONDS)  # keeps the computation running long enough to kill a worker
    return make_purchases(ROWS_PER_PART, seed=100 + i)


@pytest.mark.mlperf_dask
@pytest.mark.xdist_group("dask")
def test_dask_worker_killed_mid_computation(dask_client: Any) -> None:
    import dask
    import dask.dataframe as dd

    from mlperf.distributed.dask import region_summary

    if os.environ.get("DASK_SCHEDULER_ADDRESS"):
        pytest.skip("kills a worker process: runs against the local cluster only")
    meta = make_purchases(0)
    ddf = dd.from_delayed([dask.delayed(_slow_part)(i) for i in range(N_PARTS)], meta=meta)
    parts = [make_purchases(ROWS_PER_PART, seed=100 + i) for i in range(N_PARTS)]
    expected = common.region_summary(pd.concat(parts, ignore_index=True))
    pids = dask_client.run(os.getpid)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(region_summary, ddf, session=dask_client)
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline and not future.done():
            busy = [addr for addr, tasks in dask_client.processing().items() if tasks]
            victim = busy[0] if busy else None
            time.sleep(0.05)
        assert victim is not None, "no worker ever picked up a task"
        os.kill(pids[victim], signal.SIGKILL)
        got = future.result(timeout=120)
    assert_summary_equal(got, expected, scale=1e3)
    dask_client.wait_for_workers(len(pids), timeout=60)
    assert victim not in dask_client.run(os.getpid), "the killed worker is still registered"


SPARK_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from pyspark import TaskContext
    from pyspark.sql import functions as F

    from mlperf.distributed.spark import region_summary, spark_session

    data, out, marker = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])


    def flaky(age):
        ctx = TaskContext.get()
        if ctx.partitionId() == 0 and ctx.attemptNumber() == 0:
            marker.touch()
            raise RuntimeError("injected failure of the first attempt")
        return age


    for master in ("local[2]", "local[2, 2]"):
        with spark_session(master=master) as spark:
            sdf = spark.read.parquet(data).repartition(4)
            sdf = sdf.withColumn("age", F.udf(flaky, "double")("age"))
            try:
                result = region_summary(sdf)
            except Exception as exc:
                print(f"{master}: failed: {type(exc).__name__}")
                continue
            result.to_parquet(out)
            print(f"{master}: ok")
    """
)


@pytest.mark.mlperf_spark
@pytest.mark.xdist_group("spark-fault")
def test_spark_task_failing_once_is_retried(tmp_path: Path, purchases_parquet: Any) -> None:
    data = purchases_parquet(30_000)
    out, marker = tmp_path / "result.parquet", tmp_path / "failed-once"
    script = tmp_path / "flaky_job.py"
    script.write_text(SPARK_SCRIPT)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    for var in ("SPARK_REMOTE", "SPARK_MASTER"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, str(script), str(data), str(out), str(marker)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=os.getcwd(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "local[2]: failed" in proc.stdout, proc.stdout  # no retry: the injected fault is real
    assert "local[2, 2]: ok" in proc.stdout, proc.stdout
    assert marker.exists()
    assert_summary_equal(pd.read_parquet(out), common.region_summary(data), scale=1e3)

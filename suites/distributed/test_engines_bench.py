"""What each engine costs on this machine: region_summary per engine and size, the
tutorial's forest per engine, engine start-up, and the Ray Tune search.

Wall time (``metric="wall"``) because the work runs in other processes (JVM, Dask
workers, Ray workers).  Every benchmark also checks its answer.  At the end of a
timed session ``<report dir>/distributed`` gets ``engines.md`` / ``engines.csv``
(table with the multiple of pandas and each engine's crossover size) and
``time_vs_rows.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import pandas as pd
import pytest
from dist_helpers import TreeRss, assert_summary_equal

from mlperf.data import make_purchases
from mlperf.distributed import common

WALL = pytest.mark.mlperf(metric="wall")
# The plugin's memory round sees only this process, not the engine's: skip it for
# engines and record the whole process tree's peak in extra_info instead.
WALL_TREE = pytest.mark.mlperf(metric="wall", memory=False)


def _spark() -> list[Any]:
    return [pytest.mark.mlperf_spark, pytest.mark.xdist_group("spark"), WALL_TREE]


def _dask() -> list[Any]:
    return [pytest.mark.mlperf_dask, pytest.mark.xdist_group("dask"), WALL_TREE]


def _ray() -> list[Any]:
    return [pytest.mark.mlperf_ray, pytest.mark.xdist_group("ray"), WALL_TREE]


ENGINES = [
    pytest.param("pandas", None, marks=[WALL], id="pandas"),
    pytest.param("duckdb", None, marks=[WALL], id="duckdb"),
    pytest.param("polars", None, marks=[WALL], id="polars"),
    pytest.param("spark", "spark", marks=_spark(), id="spark"),
    pytest.param("dask", "dask_client", marks=_dask(), id="dask"),
    pytest.param("ray", "ray_runtime", marks=_ray(), id="ray"),
]
SIZES = [
    pytest.param(100_000, id="1e5"),
    pytest.param(1_000_000, id="1e6"),
    pytest.param(10_000_000, id="1e7", marks=pytest.mark.mlperf_slow),
]


def _summary_fn(engine: str) -> Any:
    if engine == "pandas":
        return common.region_summary
    if engine in ("duckdb", "polars"):
        from mlperf.distributed import peers

        return getattr(peers, f"{engine}_region_summary")
    return __import__(f"mlperf.distributed.{engine}", fromlist=["x"]).region_summary


def _timed_only(benchmark: Any, why: str) -> None:
    """Skip a benchmark whose body adds nothing when untimed (``make test``)."""
    if not benchmark.enabled:
        pytest.skip(f"timed only ({why}); runs under make bench / --benchmark-enable")


def _run(benchmark: Any, fn: Any, arg: Any, rounds: int) -> tuple[Any, TreeRss]:
    with TreeRss() as tree:
        result = benchmark.pedantic(fn, args=(arg,), rounds=rounds, iterations=1, warmup_rounds=1)
    return result, tree


@pytest.mark.parametrize("n_rows", SIZES)
@pytest.mark.parametrize(("engine", "fixture"), ENGINES)
def test_region_summary_parquet(
    benchmark: Any,
    engine: str,
    fixture: str | None,
    n_rows: int,
    request: pytest.FixtureRequest,
    purchases_parquet: Any,
    engine_table: Any,
) -> None:
    """From Parquet files: each engine reads them itself (the larger-than-memory path)."""
    if n_rows > 100_000:
        _timed_only(benchmark, "the 1e5 variant checks the same code path")
    if fixture:
        request.getfixturevalue(fixture)
    folder = purchases_parquet(n_rows)
    result, tree = _run(benchmark, _summary_fn(engine), folder, rounds=3)
    engine_table.record(benchmark, "region_summary", "parquet", n_rows, engine, tree)
    expected = result if engine == "pandas" else common.region_summary(folder)
    assert_summary_equal(result, expected, scale=1e3)
    assert result["user_count"].sum() == n_rows


@pytest.mark.parametrize("n_rows", SIZES[:2])
@pytest.mark.parametrize(("engine", "fixture"), ENGINES)
def test_region_summary_frame(
    benchmark: Any,
    engine: str,
    fixture: str | None,
    n_rows: int,
    request: pytest.FixtureRequest,
    mlperf_data: Any,
    engine_table: Any,
) -> None:
    """From a pandas frame in this process: includes shipping the rows to the engine."""
    if n_rows > 100_000:
        _timed_only(benchmark, "the 1e5 variant checks the same code path")
    if fixture:
        request.getfixturevalue(fixture)
    df = mlperf_data("purchases", n_rows)
    result, tree = _run(benchmark, _summary_fn(engine), df, rounds=3)
    engine_table.record(benchmark, "region_summary", "frame", n_rows, engine, tree)
    assert_summary_equal(result, common.region_summary(df), scale=1e3)


def _seed_spark(df: pd.DataFrame) -> pd.DataFrame:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from mlperf.distributed.spark import quiet_pandas3

    spark = SparkSession.getActiveSession()
    with quiet_pandas3():
        sdf = spark.createDataFrame(df)  # the tutorial's way in
        return (
            sdf.groupBy("region")
            .agg(
                F.count("*").alias("user_count"),
                F.avg("age"),
                F.stddev("age"),
                F.sum("purchase_amount"),
            )
            .toPandas()
        )


def _seed_dask(df: pd.DataFrame) -> pd.DataFrame:
    import dask.dataframe as dd

    return (
        dd.from_pandas(df, npartitions=4)
        .groupby("region")
        .agg(
            {"age": ["mean", "std"], "income": ["mean", "std"], "purchase_amount": ["mean", "sum"]}
        )
        .compute()
    )


@pytest.mark.parametrize(
    ("engine", "fixture", "fn"),
    [
        pytest.param(
            "spark (tutorial's createDataFrame)", "spark", _seed_spark, marks=_spark(), id="spark"
        ),
        pytest.param(
            "dask (tutorial's groupby.agg)", "dask_client", _seed_dask, marks=_dask(), id="dask"
        ),
    ],
)
def test_region_summary_seed_way(
    benchmark: Any,
    engine: str,
    fixture: str,
    fn: Any,
    request: pytest.FixtureRequest,
    mlperf_data: Any,
    engine_table: Any,
) -> None:
    """The tutorial's code, timed beside ours (same 1e5 frame)."""
    request.getfixturevalue(fixture)
    df = mlperf_data("purchases", 100_000)
    result, tree = _run(benchmark, fn, df, rounds=3)
    engine_table.record(benchmark, "region_summary", "frame", 100_000, engine, tree)
    assert len(result) == 4


FOREST = [
    pytest.param("scikit-learn", None, marks=[WALL], id="sklearn"),
    pytest.param("spark", "spark", marks=_spark(), id="spark"),
    pytest.param("dask", "dask_client", marks=_dask(), id="dask"),
    pytest.param("ray", "ray_runtime", marks=_ray(), id="ray"),
]


def _sklearn_forest(df: pd.DataFrame, n_trees: int, max_depth: int) -> float:
    """One process, all cores: the baseline the engines must beat."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    y = (df.purchase_amount > df.purchase_amount.mean()).astype(int)
    X = df[list(common.DEFAULT_FEATURES)]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=42)
    model = RandomForestClassifier(n_trees, max_depth=max_depth, random_state=42, n_jobs=-1)
    return float(balanced_accuracy_score(yte, model.fit(Xtr, ytr).predict(Xte)))


@pytest.mark.parametrize(
    ("n_rows", "n_trees"),
    [
        pytest.param(20_000, 100, id="20k"),
        pytest.param(100_000, 100, id="1e5", marks=pytest.mark.mlperf_slow),
    ],
)
@pytest.mark.parametrize(("engine", "fixture"), FOREST)
def test_train_forest(
    benchmark: Any,
    engine: str,
    fixture: str | None,
    n_rows: int,
    n_trees: int,
    request: pytest.FixtureRequest,
    engine_table: Any,
) -> None:
    """The tutorial's forest (100 trees, depth 10) on 20k rows (its 1e5 rows are slow)."""
    _timed_only(benchmark, "test_forest.py checks every engine's forest")
    if fixture:
        request.getfixturevalue(fixture)
    df = make_purchases(n_rows)
    if engine == "scikit-learn":

        def fn() -> float:
            return _sklearn_forest(df, n_trees, 10)
    else:
        train = __import__(f"mlperf.distributed.{engine}", fromlist=["x"]).train_forest

        def fn() -> float:
            return train(df, n_trees=n_trees, max_depth=10).balanced_accuracy

    with TreeRss() as tree:
        balanced = benchmark.pedantic(fn, rounds=1, iterations=1)
    engine_table.record(benchmark, "train_forest", "frame", n_rows, engine, tree)
    assert abs(balanced - 0.5) < 0.05


STARTUP = {
    "spark": "from mlperf.distributed.spark import spark_session\n"
    "with spark_session() as s:\n    assert s.range(10).count() == 10",
    "dask": "from mlperf.distributed.dask import dask_client\n"
    "if __name__ == '__main__':\n    with dask_client() as c:\n"
    "        assert c.submit(sum, [1, 2]).result() == 3",
    "ray": "from mlperf.distributed.ray import ray_runtime\n"
    "with ray_runtime() as ray:\n    assert ray.get(ray.put(3)) == 3",
}


@pytest.mark.parametrize(
    "engine",
    [
        pytest.param(
            "spark",
            marks=[pytest.mark.mlperf_spark, pytest.mark.xdist_group("spark-start"), WALL_TREE],
        ),
        pytest.param(
            "dask",
            marks=[pytest.mark.mlperf_dask, pytest.mark.xdist_group("dask-start"), WALL_TREE],
        ),
        pytest.param(
            "ray", marks=[pytest.mark.mlperf_ray, pytest.mark.xdist_group("ray-start"), WALL_TREE]
        ),
    ],
)
def test_engine_startup(benchmark: Any, engine: str, tmp_path: Any, engine_table: Any) -> None:
    """A fresh process: imports, start the engine, one trivial job, stop (cold start)."""
    _timed_only(benchmark, "the suite's engine fixtures check start-up")
    script = tmp_path / f"start_{engine}.py"
    script.write_text(textwrap.dedent(STARTUP[engine]))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SPARK_REMOTE", "DASK_SCHEDULER_ADDRESS", "RAY_ADDRESS")
    }

    def start() -> int:
        return subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, timeout=300, check=False
        ).returncode

    with TreeRss() as tree:
        rc = benchmark.pedantic(start, rounds=2, iterations=1)
    engine_table.record(benchmark, "startup", "-", 0, engine, tree)
    assert rc == 0


@pytest.mark.mlperf_slow
@pytest.mark.mlperf_ray
@pytest.mark.xdist_group("ray")
@WALL_TREE
def test_tune_forest_seed_grid(
    benchmark: Any, ray_runtime: Any, engine_table: Any, tmp_path: Any
) -> None:
    """The tutorial's search: n_estimators x max_depth on 10,000 x 10, ASHA, 4 reports a trial."""
    from mlperf.distributed.ray import tune_forest

    with TreeRss() as tree:
        result = benchmark.pedantic(lambda: tune_forest(plot_dir=tmp_path), rounds=1, iterations=1)
    engine_table.record(benchmark, "tune_forest", "seed grid", 10_000, "ray", tree)
    benchmark.extra_info["best_score"] = result.best_score
    benchmark.extra_info["stopped_early"] = int(result.trials["stopped_early"].sum())
    assert result.errors.empty and result.best_score > 0.8

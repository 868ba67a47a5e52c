"""The distributed jobs on Apache Spark (local, standalone master or Spark Connect).

``spark_session()`` is local (``local[*]`` with adaptive execution) unless
``SPARK_REMOTE`` (Spark Connect, e.g. ``sc://127.0.0.1:15002``) or a master URL
(``master=`` / ``$SPARK_MASTER``, e.g. ``spark://host:7077``) is given; the job
functions run unchanged on either.
"""

from __future__ import annotations

import os
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from mlperf._optional import require
from mlperf.distributed.common import (
    DEFAULT_FEATURES,
    INPUT_COLUMNS,
    LABEL_SOURCE,
    VALUE_COLUMNS,
    ForestResult,
    check_forest_args,
    check_forest_frame,
    check_min_users,
    check_purchases,
    finish_summary,
    parquet_path,
    scores_from_confusion,
    tmp_root,
)
from mlperf.distributed.network import (
    HTTP2_HELLO,
    ensure_reachable,
    exposed_listeners,
    process_tree,
    refuse_exposed,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkDataFrame
    from pyspark.sql import SparkSession

__all__ = ["quiet_pandas3", "region_summary", "spark_session", "to_spark", "train_forest"]

#: from this many rows on, a pandas frame reaches a local session through a Parquet file
STAGE_ROWS = 50_000

_OPEN: list[Any] = []

# The JVM logs WARN lines (native Hadoop library, spark.local.dir) before any
# setLogLevel call can run: start it at ERROR instead.
_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
"""  # sessions opened by spark_session(), innermost last


@contextmanager
def quiet_pandas3() -> Iterator[None]:
    """Silence the two warnings PySpark 4 raises about pandas 3 inside its conversions.

    Both are understood and harmless for what mlperf does: the blanket FutureWarning
    "PySpark does not yet fully support pandas >= 3.0.0" (our conversions are
    checked against the pandas reference), and the Pandas4Warning about the
    ``copy`` keyword of ``astype`` that PySpark still passes.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "PySpark does not yet fully support pandas", FutureWarning
        )
        warnings.filterwarnings("ignore", "The copy keyword is deprecated", Warning)
        yield


@contextmanager
def spark_session(
    *,
    master: str | None = None,
    remote: str | None = None,
    app_name: str = "mlperf",
    tmp: str | os.PathLike[str] | None = None,
    conf: dict[str, str] | None = None,
) -> Iterator[SparkSession]:
    """A SparkSession, stopped on exit.

    Parameters
    ----------
    master:
        Master URL; default ``$SPARK_MASTER`` or ``local[*]``.  ``local[N, F]``
        retries a failed task up to F times.
    remote:
        Spark Connect URL; default ``$SPARK_REMOTE``.  Takes precedence over *master*.
    app_name:
        Application name.
    tmp:
        Root of temporary files (default :func:`~mlperf.distributed.common.tmp_root`);
        ``spark.local.dir``, the warehouse and the JVM's temp dir go to ``<tmp>/spark``.
    conf:
        Extra Spark settings, applied last.

    Raises
    ------
    ConnectionError
        The remote server or master does not answer within ``$MLPERF_CONNECT_TIMEOUT``
        seconds (default 5); the message names it.
    RuntimeError
        This process already runs a local SparkContext (one JVM holds one), or the
        local driver listened beyond 127.0.0.1 (it is stopped again).
    """
    func = "spark_session"
    require("pyspark.sql", "Spark sessions")
    from pyspark import sql

    remote = remote or os.environ.get("SPARK_REMOTE") or None
    master = master or os.environ.get("SPARK_MASTER") or None
    builder = sql.SparkSession.builder.appName(app_name)
    if remote:
        # A Spark Connect server is a gRPC server: it answers HTTP/2's hello, and a port
        # that accepts but stays silent would hang the client for minutes.
        ensure_reachable(
            remote,
            15002,
            func=func,
            what="Spark Connect server",
            fix=("start it (python -m mlperf.distributed.cluster up) or unset SPARK_REMOTE"),
            hello=HTTP2_HELLO,
        )
        builder = builder.remote(remote)
    else:
        if master and not master.startswith("local"):
            ensure_reachable(
                master,
                7077,
                func=func,
                what="Spark master",
                fix=("start the master or unset SPARK_MASTER to run locally"),
            )
        active = require("pyspark").SparkContext._active_spark_context
        if active is not None:
            raise RuntimeError(
                f"{func}: this process already runs a SparkContext (master {active.master!r}); "
                "stop it first: one JVM holds one SparkContext"
            )
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # spark-submit first runs a small launcher JVM; keep its perf data out of /tmp too.
        os.environ.setdefault("SPARK_LAUNCHER_OPTS", "-XX:-UsePerfData")
        local = tmp_root("spark", tmp)
        log_conf = local / "log4j2.properties"
        log_conf.write_text(_LOG4J2)
        settings = {
            "spark.master": master or "local[*]",
            "spark.sql.adaptive.enabled": "true",
            "spark.sql.adaptive.coalescePartitions.enabled": "true",
            "spark.sql.shuffle.partitions": str(2 * (os.cpu_count() or 2)),
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.local.dir": str(local),
            "spark.sql.warehouse.dir": str(local / "warehouse"),
            "spark.driver.extraJavaOptions": (
                # -XX:-UsePerfData: no /tmp/hsperfdata_<user> (the JVM ignores java.io.tmpdir there)
                f"-Djava.io.tmpdir={local} -Dlog4j2.configurationFile=file:{log_conf} "
                "-XX:-UsePerfData"
            ),
            "spark.driver.memory": "2g",
            # The driver's RPC and block manager on loopback only, whatever SPARK_LOCAL_IP
            # says; the UI (which cannot be limited to loopback by a setting) is off.
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.host": "127.0.0.1",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        }
        for key, value in settings.items():
            builder = builder.config(key, value)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    before = [] if remote else exposed_listeners(process_tree())
    with quiet_pandas3():
        spark = builder.getOrCreate()
    if not remote:
        spark.sparkContext.setLogLevel("ERROR")
        try:
            refuse_exposed(func, "Spark driver", before)
        except RuntimeError:
            spark.stop()
            raise
    _OPEN.append(spark)
    try:
        yield spark
    finally:
        _OPEN.remove(spark)
        spark.stop()


def _current(session: Any, func: str) -> Any:
    if session is not None:
        return session
    if _OPEN:
        return _OPEN[-1]
    active = require("pyspark.sql", "Spark jobs").SparkSession.getActiveSession()
    if active is None:
        raise RuntimeError(
            f"{func}: no SparkSession is running; call it inside `with spark_session():` "
            "or pass session="
        )
    return active


def _is_local(spark: Any) -> bool:
    if type(spark).__module__.startswith("pyspark.sql.connect"):
        return False  # a Connect session has no SparkContext and may be on another host
    return str(spark.sparkContext.master).startswith("local")


@contextmanager
def to_spark(
    data: Any, columns: tuple[str, ...], *, session: Any = None, func: str = "to_spark"
) -> Iterator[SparkDataFrame]:
    """*data* (pandas frame, Parquet path or Spark DataFrame) as a Spark DataFrame.

    A pandas frame of :data:`STAGE_ROWS` rows or more goes to a local session through
    a staged Parquet file under the temp root (4-10x faster than ``createDataFrame``
    at 1e6 rows on a 2-core CI VM, 2026-11-26; that ships the rows inside task closures);
    smaller frames, and any frame for a remote session (which cannot read our
    files), go as Arrow batches through ``createDataFrame``.
    The staged file is deleted on exit, so use the frame inside the ``with``.
    """
    spark = _current(session, func)
    if isinstance(data, (str, os.PathLike)):
        yield spark.read.parquet(str(parquet_path(data, func))).select(*columns)
        return
    if not isinstance(data, pd.DataFrame):  # a Spark DataFrame (classic or Connect)
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise KeyError(f"{func}: the Spark DataFrame has no column(s) {missing!r}")
        yield data.select(*columns)
        return
    frame = data.loc[:, list(columns)]
    if len(frame) < STAGE_ROWS or not _is_local(spark):
        pa = require("pyarrow")
        with quiet_pandas3():
            yield spark.createDataFrame(pa.Table.from_pandas(frame, preserve_index=False))
        return
    staged = tmp_root("spark") / "staging" / f"{uuid.uuid4().hex}.parquet"
    staged.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(staged, index=False)
    try:
        yield spark.read.parquet(str(staged))
    finally:
        staged.unlink(missing_ok=True)


def region_summary(
    data: Any, *, min_users: int = 0, session: SparkSession | None = None
) -> pd.DataFrame:
    """Per-region statistics on Spark (``groupBy('region').agg(...)``).

    Parameters
    ----------
    data:
        pandas frame, Parquet file/folder (read by Spark, never through pandas) or a
        Spark DataFrame with ``region``, ``age``, ``income``, ``purchase_amount``.
    min_users:
        Keep regions with ``user_count > min_users``.
    session:
        Default: the innermost :func:`spark_session`, else the active session.

    Returns
    -------
    pandas.DataFrame
        Layout of :func:`mlperf.distributed.common.region_summary`.
    """
    func = "spark.region_summary"
    min_users = check_min_users(min_users, func)
    if isinstance(data, pd.DataFrame):
        check_purchases(data, func)
    require("pyspark.sql.functions", "Spark jobs")
    from pyspark.sql import functions as F

    with to_spark(data, INPUT_COLUMNS, session=session, func=func) as sdf:
        # Spark counts NaN as a number (one NaN makes a group's mean NaN); pandas skips
        # it.  nanvl(x, NULL) turns NaN into NULL, which every aggregate skips.
        null = F.lit(None).cast("double")
        sdf = sdf.select(
            "region", *[F.nanvl(F.col(c).cast("double"), null).alias(c) for c in VALUE_COLUMNS]
        )
        agg = sdf.groupBy("region").agg(
            F.count(F.lit(1)).alias("user_count"),
            F.avg("age").alias("avg_age"),
            F.stddev_samp("age").alias("std_age"),
            F.avg("income").alias("avg_income"),
            F.stddev_samp("income").alias("std_income"),
            F.avg("purchase_amount").alias("avg_purchase"),
            F.sum("purchase_amount").alias("total_purchase"),
        )
        if min_users:
            agg = agg.filter(F.col("user_count") > min_users)
        with quiet_pandas3():
            out = agg.toPandas()
    return finish_summary(out, min_users, func)


def train_forest(
    data: Any,
    *,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    n_trees: int = 100,
    max_depth: int = 10,
    test_size: float = 0.2,
    seed: int = 42,
    session: SparkSession | None = None,
) -> ForestResult:
    """A random forest in Spark ML: VectorAssembler + RandomForestClassifier.

    The label is ``purchase_amount > mean(purchase_amount)``; the split is
    ``randomSplit([1 - test_size, test_size], seed)``; accuracy comes from
    ``MulticlassClassificationEvaluator``, balanced accuracy from the confusion counts.

    Parameters
    ----------
    data:
        pandas frame, Parquet path or Spark DataFrame with *features* and ``purchase_amount``.
    features, n_trees, max_depth, test_size, seed:
        Feature columns, ``numTrees``, ``maxDepth``, test fraction, seed.
    session:
        Default: the innermost :func:`spark_session`.

    Returns
    -------
    ForestResult
    """
    func = "spark.train_forest"
    feats = check_forest_args(features, n_trees, max_depth, test_size, seed, func)
    if isinstance(data, pd.DataFrame):
        check_forest_frame(data, feats, func)
    require("pyspark.sql.functions", "Spark ML")
    from pyspark.sql import functions as F

    require("pyspark.ml", "Spark ML")
    from pyspark import ml

    require("pyspark.ml.classification", "Spark ML")
    from pyspark.ml import classification as clf

    require("pyspark.ml.feature", "Spark ML")
    from pyspark.ml import feature as feat_mod

    require("pyspark.ml.evaluation", "Spark ML")
    from pyspark.ml import evaluation

    columns = tuple(dict.fromkeys((*feats, LABEL_SOURCE)))
    t0 = time.perf_counter()
    with to_spark(data, columns, session=session, func=func) as sdf:
        threshold = sdf.agg(F.avg(LABEL_SOURCE)).collect()[0][0]
        labelled = sdf.withColumn("label", (F.col(LABEL_SOURCE) > F.lit(threshold)).cast("int"))
        train, test = labelled.randomSplit([1.0 - test_size, test_size], seed=seed)
        t1 = time.perf_counter()
        pipeline = ml.Pipeline(
            stages=[
                feat_mod.VectorAssembler(
                    inputCols=list(feats), outputCol="features", handleInvalid="error"
                ),
                clf.RandomForestClassifier(
                    labelCol="label",
                    featuresCol="features",
                    numTrees=int(n_trees),
                    maxDepth=int(max_depth),
                    seed=int(seed),
                ),
            ]
        )
        model = pipeline.fit(train)
        t2 = time.perf_counter()
        predictions = model.transform(test).select("label", "prediction").cache()
        accuracy = evaluation.MulticlassClassificationEvaluator(
            labelCol="label", predictionCol="prediction", metricName="accuracy"
        ).evaluate(predictions)
        rows = predictions.groupBy("label", "prediction").count().collect()
        predictions.unpersist()
        n_train = train.count()
        t3 = time.perf_counter()
    confusion = {(int(r["label"]), int(r["prediction"])): int(r["count"]) for r in rows}
    _, balanced = scores_from_confusion(confusion)
    forest = cast(clf.RandomForestClassificationModel, model.stages[-1])
    importances = pd.Series(
        forest.featureImportances.toArray(), index=list(feats), name="importance"
    )
    return ForestResult(
        accuracy=float(accuracy),
        balanced_accuracy=balanced,
        feature_importances=importances,
        timings={"load": t1 - t0, "fit": t2 - t1, "score": t3 - t2, "total": t3 - t0},
        n_train=int(n_train),
        n_test=sum(confusion.values()),
    )

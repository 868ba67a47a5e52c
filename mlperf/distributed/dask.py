"""The distributed jobs on Dask (a LocalCluster, or a scheduler by address).

``dask_client()`` starts a LocalCluster of worker *processes* on 127.0.0.1 unless
``DASK_SCHEDULER_ADDRESS`` (or ``address=``) names a running scheduler; the job
functions run unchanged on either.  Workers must be able to import ``mlperf``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlperf._optional import require
from mlperf.distributed.common import (
    DEFAULT_FEATURES,
    INPUT_COLUMNS,
    LABEL_SOURCE,
    ForestResult,
    check_forest_args,
    check_forest_frame,
    check_min_users,
    check_purchases,
    combine_partials,
    forest_result,
    parquet_path,
    partial_meta,
    partial_stats,
    tmp_root,
)
from mlperf.distributed.network import (
    connect_timeout,
    ensure_reachable,
    exposed_listeners,
    process_tree,
    refuse_exposed,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["dask_client", "region_summary", "to_dask", "train_forest"]

#: rows per partition when a pandas frame is split (and at least one per worker thread)
ROWS_PER_PARTITION = 1_000_000


@contextmanager
def dask_client(
    *,
    address: str | None = None,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    tmp: str | os.PathLike[str] | None = None,
) -> Iterator[Client]:
    """A Dask client, closed on exit (with its LocalCluster when it made one).

    Parameters
    ----------
    address:
        Scheduler address; default ``$DASK_SCHEDULER_ADDRESS``; none: a LocalCluster.
    n_workers, threads_per_worker:
        LocalCluster size: worker processes (own GIL each) x threads.  The default
        2 x 1 fits this project's 2-core machines (4 x 2 started in 3.5-6.4 s there,
        2 x 1 in 1.7-3.4 s; 2026-11-26, a 2-core CI VM).
    tmp:
        Root of temporary files (default :func:`~mlperf.distributed.common.tmp_root`);
        worker spill and scratch go to ``<tmp>/dask``.

    Raises
    ------
    ConnectionError
        The scheduler does not accept connections within ``$MLPERF_CONNECT_TIMEOUT``
        seconds (default 5); the message names it.
    RuntimeError
        The LocalCluster listened beyond 127.0.0.1 (it is closed again).
    """
    func = "dask_client"
    distributed = require("distributed", "Dask clusters")
    dask = require("dask", "Dask clusters")
    local = tmp_root("dask", tmp)
    # Spawned worker processes read the env var; this process reads the config.
    os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", str(local))
    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    timeout = connect_timeout()
    cluster = None
    with dask.config.set({"temporary-directory": str(local)}):
        if address:
            ensure_reachable(
                address,
                8786,
                func=func,
                what="Dask scheduler",
                fix=(
                    "start it (python -m mlperf.distributed.cluster up) or unset "
                    "DASK_SCHEDULER_ADDRESS"
                ),
                greeting=address.startswith("tcp://") or "://" not in address,
            )
            client = distributed.Client(address, timeout=f"{timeout}s")
        else:
            before = exposed_listeners(process_tree())
            cluster = distributed.LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # None still serves HTTP, on 8787
                local_directory=str(local),
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
            try:
                refuse_exposed(func, "Dask cluster", before)
            except RuntimeError:
                client.close()
                cluster.close()
                raise
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def _current(session: Any, func: str) -> Any:
    if session is not None:
        return session
    distributed = require("distributed", "Dask jobs")
    try:
        return distributed.default_client()
    except ValueError:
        raise RuntimeError(
            f"{func}: no Dask client is running; call it inside `with dask_client():` or pass "
            "session="
        ) from None


def to_dask(data: Any, columns: tuple[str, ...], client: Any, func: str = "to_dask") -> Any:
    """*data* (pandas frame, Parquet path or Dask DataFrame) as a Dask DataFrame of *columns*.

    A pandas frame is cut into max(worker threads, rows / 1e6) partitions, scattered
    to the workers.
    """
    dd = require("dask.dataframe", "Dask jobs")
    if isinstance(data, (str, os.PathLike)):
        return dd.read_parquet(str(parquet_path(data, func)), columns=list(columns))
    if isinstance(data, pd.DataFrame):
        frame = data.loc[:, list(columns)]
        threads = sum(client.nthreads().values()) or 1
        n_parts = min(max(threads, math.ceil(len(frame) / ROWS_PER_PARTITION)), max(len(frame), 1))
        bounds = np.linspace(0, len(frame), n_parts + 1).astype(int)
        # Scattered, not embedded in the graph: dd.from_pandas ships the rows inside the
        # task graph through the scheduler (and warns about the large graph).
        parts = [frame.iloc[a:b] for a, b in itertools.pairwise(bounds)]
        futures = client.scatter(parts, hash=False)  # same rows twice: still new keys
        return dd.from_delayed(futures, meta=frame.iloc[:0], verify_meta=False)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise KeyError(f"{func}: the Dask DataFrame has no column(s) {missing!r}")
    return data[list(columns)]


def region_summary(data: Any, *, min_users: int = 0, session: Client | None = None) -> pd.DataFrame:
    """Per-region statistics on Dask, exact where ``groupby().std()`` is not.

    Each partition yields count, sum and M2 per region; the driver merges them with
    Chan's formula.  Dask's own ``groupby(...).std()`` uses the
    sum-of-squares formula and loses every digit once the mean is large against the
    spread (1e8 + N(0, 1): 100 % error), see ``suites/distributed``.

    Parameters
    ----------
    data:
        pandas frame, Parquet file/folder (read by the workers) or Dask DataFrame
        with ``region``, ``age``, ``income``, ``purchase_amount``.
    min_users:
        Keep regions with ``user_count > min_users``.
    session:
        Client to use; default the current default client.

    Returns
    -------
    pandas.DataFrame
        Layout of :func:`mlperf.distributed.common.region_summary`.
    """
    func = "dask.region_summary"
    min_users = check_min_users(min_users, func)
    if isinstance(data, pd.DataFrame):
        check_purchases(data, func)
    client = _current(session, func)
    ddf = to_dask(data, INPUT_COLUMNS, client, func)
    parts = client.compute(ddf.map_partitions(partial_stats, meta=partial_meta())).result()
    return combine_partials(parts, min_users, func)


def _confusion(y: pd.Series, pred: np.ndarray) -> np.ndarray:
    codes = 2 * np.asarray(y, dtype=np.int64) + np.asarray(pred, dtype=np.int64)
    return np.bincount(codes, minlength=4)[None, :]


def train_forest(
    data: Any,
    *,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    n_trees: int = 100,
    max_depth: int = 10,
    test_size: float = 0.2,
    seed: int = 42,
    session: Client | None = None,
) -> ForestResult:
    """A random forest on Dask.

    ``dask_ml.ensemble.RandomForestClassifier`` does not exist (dask-ml 2025.1):
    scikit-learn's forest is fitted with its trees built on the workers
    (``joblib.parallel_config(backend="dask")``), and the test split is scored
    partition by partition on the workers through ``dask_ml.wrappers.ParallelPostFit``.
    The training split is gathered (scikit-learn fits in memory); the test split
    never leaves the workers.  ``dask_ml``'s split is per partition, so its sizes
    are close to, not exactly, ``test_size``.

    Parameters
    ----------
    data:
        pandas frame, Parquet path or Dask DataFrame with *features* and ``purchase_amount``.
    features, n_trees, max_depth, test_size, seed:
        Feature columns, trees, depth, test fraction, seed.
    session:
        Client to use; default the current default client.

    Returns
    -------
    ForestResult
    """
    func = "dask.train_forest"
    feats = check_forest_args(features, n_trees, max_depth, test_size, seed, func)
    if isinstance(data, pd.DataFrame):
        check_forest_frame(data, feats, func)
    joblib = require("joblib", "Dask ML")
    ensemble = require("sklearn.ensemble", "Dask ML")
    wrappers = require("dask_ml.wrappers", "Dask ML")
    selection = require("dask_ml.model_selection", "Dask ML")
    client = _current(session, func)
    t0 = time.perf_counter()
    ddf = to_dask(data, tuple(dict.fromkeys((*feats, LABEL_SOURCE))), client, func)
    threshold, n_missing = client.compute([ddf[LABEL_SOURCE].mean(), ddf.isna().sum()], sync=True)
    if n_missing.any():
        bad = {k: int(v) for k, v in n_missing.items() if v}
        raise ValueError(
            f"{func}: missing values per column {bad!r}; impute or drop those rows first"
        )
    X = ddf[list(feats)]
    y = (ddf[LABEL_SOURCE] > threshold).astype("int64")
    X_train, X_test, y_train, y_test = selection.train_test_split(
        X, y, test_size=test_size, random_state=seed, shuffle=True
    )
    X_fit, y_fit = client.compute([X_train, y_train], sync=True)
    t1 = time.perf_counter()
    forest = ensemble.RandomForestClassifier(
        n_estimators=int(n_trees), max_depth=int(max_depth), random_state=int(seed), n_jobs=-1
    )
    with joblib.parallel_config(backend="dask"):
        forest.fit(X_fit, y_fit)
    t2 = time.perf_counter()
    forest.n_jobs = 1  # each partition's prediction runs in one worker thread
    pred = wrappers.ParallelPostFit(estimator=forest).predict(X_test)
    labels = y_test.to_dask_array()
    counts = labels.map_blocks(
        _confusion, pred, chunks=((1,) * labels.numblocks[0], (4,)), dtype=np.int64, new_axis=1
    )
    confusion = client.compute(counts.sum(axis=0), sync=True)
    t3 = time.perf_counter()
    return forest_result(forest, feats, confusion, (t0, t1, t2, t3), len(y_fit))

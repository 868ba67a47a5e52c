"""The common operations on Ray, under the names every engine module uses.

:func:`region_summary` runs on Ray Data; :func:`train_forest` fits scikit-learn's forest
with Ray tasks.  Both run inside :func:`~mlperf.distributed.ray.ray_runtime`.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import warnings
from typing import Any

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
    partial_stats,
)
from mlperf.distributed.ray.runtime import _running

__all__ = ["region_summary", "train_forest"]


def _dataset(data: Any, columns: tuple[str, ...], func: str) -> Any:
    rdata = require("ray.data", "Ray Data")
    if isinstance(data, (str, os.PathLike)):
        return rdata.read_parquet(str(parquet_path(data, func))).select_columns(list(columns))
    if isinstance(data, pd.DataFrame):
        frame = data.loc[:, list(columns)]
        n_blocks = max(1, min(int(_running(func).cluster_resources().get("CPU", 1)), len(frame)))
        bounds = np.linspace(0, len(frame), n_blocks + 1).astype(int)
        return rdata.from_pandas([frame.iloc[a:b] for a, b in itertools.pairwise(bounds)])
    missing = [c for c in columns if c not in data.columns()]
    if missing:
        raise KeyError(f"{func}: the Ray Dataset has no column(s) {missing!r}")
    return data.select_columns(list(columns))


def region_summary(data: Any, *, min_users: int = 0) -> pd.DataFrame:
    """Per-region statistics with Ray Data: per-block partial statistics, merged exactly.

    Parameters
    ----------
    data:
        pandas frame, Parquet file/folder (read by Ray Data) or a Ray Dataset with
        ``region``, ``age``, ``income``, ``purchase_amount``.
    min_users:
        Keep regions with ``user_count > min_users``.

    Returns
    -------
    pandas.DataFrame
        Layout of :func:`mlperf.distributed.common.region_summary`.
    """
    func = "ray.region_summary"
    min_users = check_min_users(min_users, func)
    _running(func)
    if isinstance(data, pd.DataFrame):
        check_purchases(data, func)
    ds = _dataset(data, INPUT_COLUMNS, func)
    with warnings.catch_warnings():
        # Ray Data's pandas blocks call reset_index(inplace=True), deprecated in pandas 3.1.
        warnings.filterwarnings("ignore", "The inplace keyword", Warning)
        parts = ds.map_batches(partial_stats, batch_format="pandas", batch_size=None).to_pandas()
    return combine_partials(parts, min_users, func)


def _predict_block(forest: Any, X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    pred = forest.predict(X).astype(np.int64)
    return np.bincount(2 * np.asarray(y, dtype=np.int64) + pred, minlength=4)


def train_forest(
    data: Any,
    *,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    n_trees: int = 100,
    max_depth: int = 10,
    test_size: float = 0.2,
    seed: int = 42,
) -> ForestResult:
    """A random forest trained inside Ray.

    scikit-learn's forest builds its trees as Ray tasks (joblib's ``ray`` backend),
    and the test split is scored by Ray tasks, one per CPU.  The data is gathered
    in the driver first (scikit-learn fits in memory); the split is scikit-learn's
    exact ``train_test_split(random_state=seed)``.

    Parameters
    ----------
    data:
        pandas frame, Parquet path or Ray Dataset with *features* and ``purchase_amount``.
    features, n_trees, max_depth, test_size, seed:
        Feature columns, trees, depth, test fraction, seed.

    Returns
    -------
    ForestResult
    """
    func = "ray.train_forest"
    feats = check_forest_args(features, n_trees, max_depth, test_size, seed, func)
    ray = _running(func)
    joblib = require("joblib", "Ray ML")
    ensemble = require("sklearn.ensemble", "Ray ML")
    selection = require("sklearn.model_selection", "Ray ML")
    require("ray.util.joblib", "Ray ML").register_ray()
    # joblib hands Ray's Pool a multiprocessing `context` it ignores, and Ray warns each time.
    logging.getLogger("ray.util.multiprocessing.pool").setLevel(logging.ERROR)
    columns = tuple(dict.fromkeys((*feats, LABEL_SOURCE)))
    t0 = time.perf_counter()
    if isinstance(data, pd.DataFrame):
        frame = data
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The inplace keyword", Warning)  # Ray Data's own
            frame = _dataset(data, columns, func).to_pandas()
    check_forest_frame(frame, feats, func)
    y = (frame[LABEL_SOURCE] > frame[LABEL_SOURCE].mean()).astype(np.int64).to_numpy()
    X_train, X_test, y_train, y_test = selection.train_test_split(
        frame.loc[:, list(feats)], y, test_size=test_size, random_state=seed
    )
    t1 = time.perf_counter()
    forest = ensemble.RandomForestClassifier(
        n_estimators=int(n_trees), max_depth=int(max_depth), random_state=int(seed), n_jobs=-1
    )
    with joblib.parallel_config(backend="ray"):
        forest.fit(X_train, y_train)
    t2 = time.perf_counter()
    forest.n_jobs = 1
    model = ray.put(forest)
    n_blocks = max(1, min(int(ray.cluster_resources().get("CPU", 1)), len(y_test)))
    score = ray.remote(_predict_block)
    refs = [
        score.remote(model, X, yb)
        for X, yb in zip(
            np.array_split(X_test, n_blocks), np.array_split(y_test, n_blocks), strict=True
        )
    ]
    confusion = np.sum(ray.get(refs), axis=0)
    t3 = time.perf_counter()
    return forest_result(forest, feats, confusion, (t0, t1, t2, t3), len(y_train))

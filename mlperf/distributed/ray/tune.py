"""Hyper-parameter search with Ray Tune: a grid of forests, stopped early by ASHA.

:func:`tune_forest` runs inside :func:`~mlperf.distributed.ray.ray_runtime`;
:func:`make_tuning_data` is its default, learnable data set.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlperf._optional import require
from mlperf.distributed.common import TuneResult, tmp_root
from mlperf.distributed.ray.runtime import _running

__all__ = ["make_tuning_data", "tune_forest"]


def make_tuning_data(
    n_samples: int = 10_000, n_features: int = 10, seed: int = 42
) -> tuple[np.ndarray, np.ndarray]:
    """Tuning data: ``X ~ N(0, 1)``, ``y = sum(X, axis=1) > 0`` (learnable)."""
    X = np.random.default_rng(seed).standard_normal((n_samples, n_features))
    return X, (X.sum(axis=1) > 0).astype(np.int64)


def _grow_forest(config: dict[str, Any], *, data: tuple[Any, ...], n_steps: int, seed: int) -> None:
    """One trial: grow the forest in *n_steps* (warm start), reporting after each step,
    so that ASHA has intermediate results to stop bad trials on."""
    from ray import tune
    from sklearn.ensemble import RandomForestClassifier

    X_train, X_val, y_train, y_val = data
    forest = RandomForestClassifier(
        n_estimators=1, max_depth=config["max_depth"], random_state=seed, warm_start=True, n_jobs=1
    )
    total = config["n_estimators"]
    for step in range(1, n_steps + 1):
        forest.set_params(n_estimators=max(1, round(total * step / n_steps)))
        forest.fit(X_train, y_train)
        accuracy = float(np.mean(forest.predict(X_val) == y_val))
        tune.report({"accuracy": accuracy, "n_trees": forest.n_estimators})


def _describe(error: BaseException) -> str:
    """``Type: message`` of the trial's own exception, not Ray's wrapper around it."""
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {str(cause).splitlines()[-1] if str(cause) else ''}"


def _scatter(trials: pd.DataFrame, column: str, path: Path) -> Path:
    # The OO API: no pyplot state, no GUI backend.
    Figure = require("matplotlib.figure", "tune_forest's plots (or pass plot_dir=None)").Figure
    fig = Figure(figsize=(5, 4), layout="tight")
    ax = fig.subplots()
    ok = trials[trials["error"].isna()]
    ax.scatter(
        ok[column], ok["accuracy"], c=np.where(ok["stopped_early"], "tab:orange", "tab:blue")
    )
    ax.set_xlabel(column)
    ax.set_ylabel("accuracy (validation)")
    ax.set_title(f"{column} vs accuracy", fontsize="medium")
    ax.text(0.01, 0.01, "orange: stopped early by ASHA", transform=ax.transAxes, fontsize="small")
    fig.savefig(path, dpi=100)
    return path


def tune_forest(
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    n_estimators: Sequence[int] = (50, 100, 200),
    max_depth: Sequence[int | None] = (5, 10, 15),
    num_samples: int = 1,
    n_steps: int = 4,
    test_size: float = 0.2,
    seed: int = 42,
    plot_dir: str | os.PathLike[str] | None = None,
) -> TuneResult:
    """A Ray Tune search with the current API (Tuner, TuneConfig, ASHAScheduler).

    Every (n_estimators, max_depth) pair is tried (``grid_search``: 20 random choices
    from 9 pairs would repeat some and miss others) *num_samples* times.  Each trial
    grows its forest in *n_steps* warm-started steps and reports the validation
    accuracy after each, so ASHA can stop weak trials early (a trial that reports
    once cannot be stopped early).  A trial that raises fails
    alone: the others run on and the failure is listed in ``errors``.

    Parameters
    ----------
    X, y:
        Features and labels; default :func:`make_tuning_data`.
    n_estimators, max_depth:
        The grid.
    num_samples:
        Repeats of the grid.
    n_steps:
        Reports per trial (ASHA's ``max_t``).
    test_size, seed:
        Validation fraction and seed of the split and forests.
    plot_dir:
        Where to save ``tune_n_estimators.png`` and ``tune_max_depth.png``; none: no plots.

    Returns
    -------
    TuneResult
    """
    func = "tune_forest"
    _running(func)
    tune = require("ray.tune", "Ray Tune")
    schedulers = require("ray.tune.schedulers", "Ray Tune")
    selection = require("sklearn.model_selection", "Ray Tune")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
        raise ValueError(f"{func}: n_steps must be an integer >= 1; got {n_steps!r}")
    if not n_estimators or not max_depth:
        raise ValueError(
            f"{func}: the grid is empty: n_estimators={n_estimators!r}, max_depth={max_depth!r}"
        )
    if X is None or y is None:
        X, y = make_tuning_data(seed=seed)
    t0 = time.perf_counter()
    split = tuple(selection.train_test_split(X, y, test_size=test_size, random_state=seed))
    trainable = tune.with_resources(
        tune.with_parameters(_grow_forest, data=split, n_steps=n_steps, seed=seed), {"cpu": 1}
    )
    tuner = tune.Tuner(
        trainable,
        param_space={
            "n_estimators": tune.grid_search(list(n_estimators)),
            "max_depth": tune.grid_search(list(max_depth)),
        },
        tune_config=tune.TuneConfig(
            metric="accuracy",
            mode="max",
            num_samples=num_samples,
            reuse_actors=True,
            scheduler=schedulers.ASHAScheduler(
                time_attr="training_iteration", max_t=n_steps, grace_period=1, reduction_factor=2
            ),
        ),
        run_config=tune.RunConfig(
            name=f"tune_forest-{uuid.uuid4().hex[:8]}",
            storage_path=str(tmp_root("ray") / "tune"),
            verbose=0,
        ),
    )
    grid = tuner.fit()
    elapsed = time.perf_counter() - t0
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        done = int(metrics.get("training_iteration", 0))
        rows.append(
            {
                "n_estimators": result.config["n_estimators"],
                "max_depth": result.config["max_depth"],
                "accuracy": metrics.get("accuracy", np.nan),
                "n_trees": metrics.get("n_trees", 0),
                "iterations": done,
                "stopped_early": result.error is None and done < n_steps,
                "error": None if result.error is None else _describe(result.error),
            }
        )
    trials = pd.DataFrame(rows)
    errors = trials.loc[
        trials["error"].notna(), ["n_estimators", "max_depth", "error"]
    ].reset_index(drop=True)
    ok = trials[trials["error"].isna() & ~trials["stopped_early"]]
    if ok.empty:
        raise RuntimeError(f"{func}: no trial finished; errors:\n{errors.to_string()}")
    best = ok.loc[ok["accuracy"].idxmax()]
    plots = []
    if plot_dir is not None:
        out = Path(plot_dir)
        out.mkdir(parents=True, exist_ok=True)
        plots = [
            _scatter(trials, "n_estimators", out / "tune_n_estimators.png"),
            _scatter(trials, "max_depth", out / "tune_max_depth.png"),
        ]
    return TuneResult(
        best_config={
            "n_estimators": int(best["n_estimators"]),
            "max_depth": None if pd.isna(best["max_depth"]) else int(best["max_depth"]),
        },
        best_score=float(best["accuracy"]),
        trials=trials,
        errors=errors,
        plots=plots,
        timings={"tune": elapsed},
    )

"""The distributed jobs on Ray: Ray Data, a forest trained in Ray, Ray Tune.

``ray_runtime()`` starts a local Ray unless ``RAY_ADDRESS`` (or ``address=``) names a
running cluster; the job functions run unchanged on either.  A local Ray listens on
127.0.0.1 only and requires a token (Ray's token authentication, a random token per
process): Ray runs whatever a connected driver submits, so nothing else may connect.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from mlperf._optional import require
from mlperf.distributed.common import (
    DEFAULT_FEATURES,
    INPUT_COLUMNS,
    LABEL_SOURCE,
    ForestResult,
    TuneResult,
    check_forest_args,
    check_forest_frame,
    check_min_users,
    check_purchases,
    combine_partials,
    parquet_path,
    partial_stats,
    scores_from_confusion,
    tmp_root,
)
from mlperf.distributed.network import (
    HTTP2_HELLO,
    ensure_reachable,
    exposed_listeners,
    process_tree,
    refuse_exposed,
    shown,
)

__all__ = ["make_tuning_data", "ray_runtime", "region_summary", "train_forest", "tune_forest"]

# Ray puts Unix sockets under its temp dir: <dir>/session_<date>_<pid>/sockets/plasma_store
# must fit AF_UNIX's 107 bytes; the session part takes ~64 of them.
_SOCKET_BUDGET = 107 - 64


def _ray_temp(tmp: str | os.PathLike[str] | None) -> str:
    path = tmp_root("ray", tmp)
    if len(str(path)) <= _SOCKET_BUDGET:
        return str(path)
    # Too long for Ray's sockets: a short link in the system temp dir points into the
    # root, so the files themselves still live under it.
    import hashlib
    import tempfile

    link = (
        Path(tempfile.gettempdir())
        / f"mlperf-ray-{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    )
    if not link.is_symlink() or link.resolve() != path:
        link.unlink(missing_ok=True)
        link.symlink_to(path, target_is_directory=True)
    return str(link)


#: the token of the local Rays this process starts: one per process, since Ray's token
#: loader keeps the first token it reads for the life of the process
_TOKEN: list[str] = []
#: the variables :func:`_local_ray_settings` sets (and restores on exit)
_LOCAL_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


@contextmanager
def _local_ray_settings() -> Iterator[None]:
    """Loopback only and token authentication on, for a local Ray this process starts.

    Ray binds its gRPC servers (GCS, raylet, workers) to every interface unless its
    node address is 127.0.0.1, and it takes the host's outward address unless it
    believes it runs a single-node cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``).
    Ray reads that switch when it is imported, so this process's copy is set too; the
    processes Ray starts read it from the environment.  Token mode is forced (an
    inherited ``RAY_AUTH_MODE=disabled`` would let any local user's driver in) with
    the user's ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` if set, else a random one.
    """
    constants: Any = require("ray._private.ray_constants", "Ray")
    raylet: Any = require("ray._raylet", "Ray")
    saved_env = {name: os.environ.get(name) for name in _LOCAL_ENV}
    saved_switch = constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AUTH_MODE"] = "token"
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        if not _TOKEN:
            _TOKEN.append(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN"] = _TOKEN[0]
    constants.ENABLE_RAY_CLUSTER = False
    if raylet.get_authentication_mode() != raylet.AuthenticationMode.TOKEN:
        raylet.Config.initialize("")  # this process read RAY_AUTH_MODE before: read it again
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_switch
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def ray_runtime(
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    tmp: str | os.PathLike[str] | None = None,
) -> Iterator[ModuleType]:
    """Ray, initialised for the block and shut down on exit; yields the ``ray`` module.

    A local Ray listens on 127.0.0.1 only and requires a token whatever
    ``RAY_AUTH_MODE`` says (``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` if set, else a
    random token of this process); the environment is given back on exit.  A cluster
    is reached with the token its ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` name
    (``python -m mlperf.distributed.cluster up`` exports them).

    Parameters
    ----------
    address:
        Cluster address (``host:port`` of the head's GCS, or ``ray://host:10001``);
        default ``$RAY_ADDRESS``; none: a local Ray with *num_cpus* CPUs.
    num_cpus:
        Local Ray only; default all cores.
    tmp:
        Root of temporary files (default :func:`~mlperf.distributed.common.tmp_root`);
        a local Ray's session dir goes to ``<tmp>/ray``.

    Raises
    ------
    ConnectionError
        The head does not answer within ``$MLPERF_CONNECT_TIMEOUT`` seconds (default
        5), or Ray cannot attach to it; the message names the address.
    RuntimeError
        Ray is already initialised in this process, or a local Ray listened beyond
        127.0.0.1 (it is shut down again).
    """
    func = "ray_runtime"
    ray = require("ray", "Ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network here, and no need
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    remote = bool(address) and address not in ("local", "auto")
    fix = "start it (python -m mlperf.distributed.cluster up) or unset RAY_ADDRESS"
    if remote:
        assert address is not None
        # Ray's GCS and its Ray Client server are gRPC servers: they answer HTTP/2's hello.
        default_port = 10001 if address.startswith("ray://") else 6379
        ensure_reachable(
            address, default_port, func=func, what="Ray head", fix=fix, hello=HTTP2_HELLO
        )
    if ray.is_initialized():
        raise RuntimeError(
            f"{func}: Ray is already initialised in this process; call ray.shutdown() first"
        )
    with contextlib.ExitStack() as stack:
        if remote:
            _attach(ray, str(address), func, fix, quiet)
        elif address == "auto":
            ray.init(address="auto", **quiet)
        else:
            stack.enter_context(_local_ray_settings())
            before = exposed_listeners(process_tree())
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count(),
                include_dashboard=False,
                _temp_dir=_ray_temp(tmp),
                **quiet,
            )
            try:
                refuse_exposed(func, "Ray", before)
            except RuntimeError:
                ray.shutdown()
                raise
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # Ray Data's own defaults touch its deprecated settings when the context is made.
            warnings.filterwarnings(
                "ignore", category=DeprecationWarning, module="ray.data.context"
            )
            ctx = require("ray.data", "Ray Data").DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        try:
            yield ray
        finally:
            ray.shutdown()


def _attach(ray: Any, address: str, func: str, fix: str, quiet: dict[str, Any]) -> None:
    """``ray.init(address)``, failing with a sentence that names the address.

    Ray Client (``ray://``) retries for 30 s and then says only that the connection
    timed out; the GCS path says "Failed to connect" after 20 s.  The probe before
    has already ruled out a dead or silent port, so what is left is a server that is
    not a Ray head of this version, or a head that refuses this driver's token.
    """
    try:
        ray.init(address=address, **quiet)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, AuthenticationError, grpc errors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(
            f"{func}: could not attach to the Ray head at {shown(address)!r} ({shown(reason)}); "
            "a cluster with token authentication needs its token in RAY_AUTH_TOKEN or "
            f"RAY_AUTH_TOKEN_PATH; or {fix}"
        ) from None


def _running(func: str) -> Any:
    ray = require("ray", "Ray jobs")
    if not ray.is_initialized():
        raise RuntimeError(f"{func}: Ray is not running; call it inside `with ray_runtime():`")
    return ray


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
    tn, fp, fn, tp = (int(v) for v in np.sum(ray.get(refs), axis=0))
    t3 = time.perf_counter()
    accuracy, balanced = scores_from_confusion({(0, 0): tn, (0, 1): fp, (1, 0): fn, (1, 1): tp})
    return ForestResult(
        accuracy=accuracy,
        balanced_accuracy=balanced,
        feature_importances=pd.Series(
            forest.feature_importances_, index=list(feats), name="importance"
        ),
        timings={"load": t1 - t0, "fit": t2 - t1, "score": t3 - t2, "total": t3 - t0},
        n_train=len(y_train),
        n_test=tn + fp + fn + tp,
    )


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

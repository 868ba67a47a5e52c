"""What every engine module shares: result types, input checks, the pandas reference,
mergeable per-partition statistics and the temp-dir root (addresses, probes and the
loopback check are in :mod:`mlperf.distributed.network`).

Only pandas, numpy and pyarrow are imported here (core dependencies).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlperf.io.grouped import between_m2
from mlperf.records import DEFAULT_CACHE_DIR

__all__ = [
    "DEFAULT_FEATURES",
    "INPUT_COLUMNS",
    "SUMMARY_COLUMNS",
    "ForestResult",
    "TuneResult",
    "check_forest_args",
    "check_forest_frame",
    "check_min_users",
    "check_purchases",
    "combine_partials",
    "finish_summary",
    "forest_result",
    "parquet_path",
    "partial_stats",
    "region_summary",
    "scores_from_confusion",
    "tmp_root",
]

#: what ``region_summary`` reads and returns
INPUT_COLUMNS: tuple[str, ...] = ("region", "age", "income", "purchase_amount")
VALUE_COLUMNS: tuple[str, ...] = ("age", "income", "purchase_amount")
SUMMARY_COLUMNS: tuple[str, ...] = (
    "user_count",
    "avg_age",
    "std_age",
    "avg_income",
    "std_income",
    "avg_purchase",
    "total_purchase",
)
#: the forest's default features; its label is ``purchase_amount > mean(purchase_amount)``
DEFAULT_FEATURES: tuple[str, ...] = ("age", "income", "purchase_count")
LABEL_SOURCE = "purchase_amount"
DEFAULT_TMP = f"{DEFAULT_CACHE_DIR}/tmp"


@dataclass(frozen=True)
class ForestResult:
    """What ``train_forest`` returns, whatever the engine.

    ``accuracy`` alone is misleading on :func:`mlperf.data.make_purchases` data (the
    majority class is 63 %; ``suites/distributed/test_forest.py`` checks it);
    ``balanced_accuracy`` (mean recall over the classes) is 0.5 for a model that
    learned nothing.  ``timings`` holds seconds per phase (load, fit, score, total).
    """

    accuracy: float
    balanced_accuracy: float
    feature_importances: pd.Series
    timings: dict[str, float]
    n_train: int = 0
    n_test: int = 0


@dataclass(frozen=True)
class TuneResult:
    """What ``mlperf.distributed.ray.tune_forest`` returns.

    ``trials`` has one row per trial (config, last score, iterations reached,
    whether ASHA stopped it early); ``errors`` one row per failed trial.
    """

    best_config: dict[str, Any]
    best_score: float
    trials: pd.DataFrame
    errors: pd.DataFrame
    plots: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------ configuration


def tmp_root(sub: str | None = None, root: str | os.PathLike[str] | None = None) -> Path:
    """The one folder under which every engine's temporary files go.

    Parameters
    ----------
    sub:
        Subfolder for one engine (``"spark"``, ``"dask"``, ``"ray"``); created.
    root:
        Overrides the root; default ``$MLPERF_TMP`` or ``.cache/mlperf/tmp``
        (relative to the working directory).

    Returns
    -------
    pathlib.Path
        Absolute path, created.
    """
    base = Path(root or os.environ.get("MLPERF_TMP") or DEFAULT_TMP).expanduser().resolve()
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


# ------------------------------------------------------------------- input checks


def parquet_path(data: str | os.PathLike[str], func: str) -> Path:
    """*data* as an existing Parquet file or folder, else FileNotFoundError naming it."""
    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"{func}: no Parquet file or folder at {str(path)!r}; pass a pandas DataFrame "
            "or the path written by mlperf.data.write_purchases"
        )
    return path.resolve()


def check_min_users(min_users: object, func: str) -> int:
    if isinstance(min_users, bool) or not isinstance(min_users, (int, np.integer)) or min_users < 0:
        raise ValueError(f"{func}: min_users must be an integer >= 0; got {min_users!r}")
    return int(min_users)


def _missing(df: pd.DataFrame, columns: tuple[str, ...], func: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(
            f"{func}: the data has no column(s) {missing!r} (it has {list(df.columns)!r}); "
            "mlperf.data.make_purchases shows the expected layout"
        )


def check_purchases(df: object, func: str) -> pd.DataFrame:
    """Validate a purchases frame for ``region_summary``; return it unchanged."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"{func}: data must be a pandas DataFrame or a Parquet path; got {type(df)!r}"
        )
    _missing(df, INPUT_COLUMNS, func)
    for col in VALUE_COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            raise TypeError(
                f"{func}: column {col!r} must be numeric; got dtype {df[col].dtype!r}; "
                f"convert it with pd.to_numeric"
            )
    n_null = int(df["region"].isna().sum())
    if n_null:
        raise ValueError(
            f"{func}: column 'region' holds {n_null} missing value(s); a row without a region "
            "belongs to no group: fill them (e.g. df['region'].fillna('unknown')) or drop them"
        )
    return df


def check_forest_args(
    features: object, n_trees: object, max_depth: object, test_size: object, seed: object, func: str
) -> tuple[str, ...]:
    """Validate ``train_forest`` arguments; return the features as a tuple."""
    if isinstance(features, str) or not features:
        raise ValueError(
            f"{func}: features must be a non-empty sequence of column names; got {features!r}"
        )
    feats: tuple[str, ...] = tuple(features)  # type: ignore[arg-type]
    if len(set(feats)) != len(feats) or not all(isinstance(f, str) for f in feats):
        raise ValueError(f"{func}: features must be distinct column names; got {feats!r}")
    for name, value in (("n_trees", n_trees), ("max_depth", max_depth)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{func}: {name} must be an integer >= 1; got {value!r}")
    if not isinstance(test_size, (int, float)) or not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"{func}: test_size must be a fraction in (0, 1); got {test_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{func}: seed must be an integer; got {seed!r}")
    return feats


def check_forest_frame(df: pd.DataFrame, features: tuple[str, ...], func: str) -> pd.DataFrame:
    """Columns present, numeric and complete (no engine's forest agrees on NaN)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            f"{func}: data must be a pandas DataFrame or a Parquet path; got {type(df)!r}"
        )
    cols = (*features, LABEL_SOURCE) if LABEL_SOURCE not in features else features
    _missing(df, cols, func)
    for col in cols:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise TypeError(f"{func}: column {col!r} must be numeric; got dtype {df[col].dtype!r}")
        n_nan = int(df[col].isna().sum())
        if n_nan:
            raise ValueError(
                f"{func}: column {col!r} holds {n_nan} missing value(s); Spark's VectorAssembler "
                "refuses them and forests disagree on them: impute or drop those rows first"
            )
    return df


# -------------------------------------------------------- the reference and merging


def region_summary(
    data: pd.DataFrame | str | os.PathLike[str], *, min_users: int = 0
) -> pd.DataFrame:
    """Per-region statistics with pandas: the reference every engine is checked against.

    Parameters
    ----------
    data:
        Purchases frame (``region``, ``age``, ``income``, ``purchase_amount``) or a
        path to Parquet file(s) holding those columns.
    min_users:
        Keep only regions with ``user_count > min_users``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``region`` (sorted), columns :data:`SUMMARY_COLUMNS`.
        ``user_count`` counts rows (purchases), as SQL's ``count(*)`` does;
        means, sums and stds (ddof=1) skip missing values; a std over fewer than
        two values and a sum over none are NaN.

    Raises
    ------
    KeyError, TypeError, ValueError
        Missing or non-numeric columns, missing regions, a bad ``min_users``.
    """
    func = "region_summary"
    min_users = check_min_users(min_users, func)
    if isinstance(data, (str, os.PathLike)):
        data = pd.read_parquet(parquet_path(data, func), columns=list(INPUT_COLUMNS))
    df = check_purchases(data, func)
    g = df.groupby("region", sort=True, dropna=False)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN is the answer
        out = pd.DataFrame(
            {
                "user_count": g.size(),
                "avg_age": g["age"].mean(),
                "std_age": g["age"].std(ddof=1),
                "avg_income": g["income"].mean(),
                "std_income": g["income"].std(ddof=1),
                "avg_purchase": g["purchase_amount"].mean(),
                "total_purchase": g["purchase_amount"].sum(min_count=1),
            }
        )
    return finish_summary(out, min_users, func)


def finish_summary(out: pd.DataFrame, min_users: int, func: str) -> pd.DataFrame:
    """Common result layout: str index 'region' sorted, int64 count, float64 stats, filter."""
    out = out.reset_index() if "region" not in out.columns else out
    if out["region"].isna().any():
        raise ValueError(
            f"{func}: the data holds rows whose region is missing; fill or drop them first"
        )
    out = out.astype({"region": "str", "user_count": "int64"})
    out = out.astype({c: "float64" for c in SUMMARY_COLUMNS[1:]})
    out = out[out["user_count"] > min_users].set_index("region").sort_index()
    return out.loc[:, list(SUMMARY_COLUMNS)]


def partial_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Mergeable statistics of one partition: per region, rows and per value column
    the count, sum and M2 (sum of squared deviations from the partition's mean).

    Merging M2 with Chan's formula keeps the std exact to ~1e-15 where the
    sum-of-squares formula (Dask's ``groupby().std()``) loses every digit once the
    mean is large against the spread.  A group holding ``inf`` keeps a NaN M2 (its
    std is NaN, as in pandas); only a group with no values gets M2 0.
    """
    g = df.groupby("region", sort=False, dropna=False)
    parts = {"rows": g.size()}
    for col in VALUE_COLUMNS:
        gc = df[col].astype("float64").groupby(df["region"], sort=False, dropna=False)
        n = gc.count()
        parts[f"{col}_n"] = n
        with np.errstate(invalid="ignore"):  # inf - inf inside var: NaN is the answer
            parts[f"{col}_sum"] = gc.sum()
            parts[f"{col}_m2"] = (gc.var(ddof=0) * n).where(n > 0, 0.0)
    out = pd.DataFrame(parts).reset_index()
    return out.astype(
        {"region": "str", "rows": "int64", **{f"{c}_n": "int64" for c in VALUE_COLUMNS}}
    )


def partial_meta() -> pd.DataFrame:
    """Empty frame with :func:`partial_stats`' columns and dtypes (Dask's ``meta``)."""
    cols: dict[str, Any] = {
        "region": pd.Series([], dtype="str"),
        "rows": pd.Series([], dtype="int64"),
    }
    for col in VALUE_COLUMNS:
        cols[f"{col}_n"] = pd.Series([], dtype="int64")
        cols[f"{col}_sum"] = pd.Series([], dtype="float64")
        cols[f"{col}_m2"] = pd.Series([], dtype="float64")
    return pd.DataFrame(cols)


def combine_partials(
    parts: pd.DataFrame, min_users: int = 0, func: str = "region_summary"
) -> pd.DataFrame:
    """Merge :func:`partial_stats` rows of many partitions into the final summary.

    Non-finite parts are not skipped: a partition whose sum is ``inf - inf`` (NaN) or
    whose M2 is NaN (it held ``inf``) makes the group's sum or std NaN, as pandas does
    in one pass.  No parts at all (an engine's empty result) give an empty summary.
    """
    if parts.empty and "region" not in parts.columns:
        parts = partial_meta()
    key = pd.Index(parts["region"])
    out = pd.DataFrame({"user_count": parts["rows"].groupby(key, sort=True, dropna=False).sum()})
    per_part = {
        stat: pd.DataFrame(
            # Ray Data hands NaN back as a missing value of an Arrow-backed column
            {
                c: parts[f"{c}_{stat}"].to_numpy(dtype=np.float64, na_value=np.nan)
                for c in VALUE_COLUMNS
            },
            index=key,
        )
        for stat in ("n", "sum", "m2")
    }
    with np.errstate(invalid="ignore"):  # inf + -inf: NaN is the answer
        n, total, m2 = (
            per_part[stat].groupby(level=0, sort=True, dropna=False).sum(skipna=False)
            for stat in ("n", "sum", "m2")
        )
    # Chan et al.: M2 = sum M2_i + sum n_i (mean_i - mean)^2 over the partitions.
    m2 = m2 + between_m2(per_part["n"], per_part["sum"], n, total)
    mean = (total / n).where(n > 0)
    std = np.sqrt(m2 / (n - 1)).where(n > 1)
    out["avg_age"], out["std_age"] = mean["age"], std["age"]
    out["avg_income"], out["std_income"] = mean["income"], std["income"]
    out["avg_purchase"] = mean["purchase_amount"]
    out["total_purchase"] = total["purchase_amount"].where(n["purchase_amount"] > 0)
    return finish_summary(out, min_users, func)


def scores_from_confusion(confusion: dict[tuple[int, int], int]) -> tuple[float, float]:
    """(accuracy, balanced accuracy) from ``{(label, prediction): count}``.

    Balanced accuracy is the mean recall over the labels present in the test set.
    """
    total = sum(confusion.values())
    if total == 0:
        raise ValueError(
            "train_forest: the test split is empty; use more rows or a larger test_size"
        )
    correct = sum(v for (label, pred), v in confusion.items() if label == pred)
    recalls = []
    for label in sorted({lab for lab, _ in confusion}):
        support = sum(v for (lab, _), v in confusion.items() if lab == label)
        if support:
            recalls.append(confusion.get((label, label), 0) / support)
    return correct / total, float(math.fsum(recalls) / len(recalls))


def forest_result(
    forest: Any,
    features: tuple[str, ...],
    confusion: Any,
    times: tuple[float, float, float, float],
    n_train: int,
) -> ForestResult:
    """The result of a scikit-learn forest whose test split was scored into counts.

    *confusion* is ``(tn, fp, fn, tp)`` summed over the engine's blocks; *times* are
    the clock readings before loading, after loading, after fitting and after scoring.
    """
    tn, fp, fn, tp = (int(v) for v in confusion)
    accuracy, balanced = scores_from_confusion({(0, 0): tn, (0, 1): fp, (1, 0): fn, (1, 1): tp})
    t0, t1, t2, t3 = times
    return ForestResult(
        accuracy=accuracy,
        balanced_accuracy=balanced,
        feature_importances=pd.Series(
            forest.feature_importances_, index=list(features), name="importance"
        ),
        timings={"load": t1 - t0, "fit": t2 - t1, "score": t3 - t2, "total": t3 - t0},
        n_train=n_train,
        n_test=tn + fp + fn + tp,
    )

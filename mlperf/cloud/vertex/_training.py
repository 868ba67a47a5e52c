"""Vertex AI data and training: upload_data, create_dataset and AutoML tabular train."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud.common import CloudError, check_training_frame
from mlperf.cloud.vertex._base import (
    VertexSession,
    resolve_session,
    vertex_call,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "OBJECTIVES",
    "create_dataset",
    "train",
    "upload_data",
]

#: prediction type -> the optimisation objectives AutoML tabular accepts for it
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "classification": (
        "maximize-au-roc",
        "minimize-log-loss",
        "maximize-au-prc",
        "maximize-precision-at-recall",
        "maximize-recall-at-precision",
    ),
    "regression": ("minimize-rmse", "minimize-mae", "minimize-rmsle"),
}
_BUDGET_RANGE = (1000, 72000)  # milli node hours the service accepts for AutoML tabular

# ------------------------------------------------------------------ data


def upload_data(
    data: pd.DataFrame | str | os.PathLike[str],
    bucket: str,
    prefix: str = "mlperf/train",
    *,
    target: str = "target",
    session: VertexSession | None = None,
    storage_client: Any = None,
) -> str:
    """Upload a training CSV to ``gs://bucket/prefix/train.csv``; return its URI.

    Parameters
    ----------
    data:
        A DataFrame (written without its index) or a path to a CSV file.
    bucket, prefix:
        Where it goes; the bucket must exist (it is never created silently).
    target:
        The label column AutoML will learn.
    storage_client:
        A ``google.cloud.storage.Client``; default :meth:`VertexSession.storage_client`.

    Returns
    -------
    str
        ``gs://bucket/prefix/train.csv``, the source for :func:`create_dataset`.

    Raises
    ------
    ValueError
        Empty frame, missing label column, a ``gs://`` bucket name.
    CloudError
        The bucket does not exist or is not accessible.
    """
    import pandas as pd

    if bucket.startswith("gs://") or "/" in bucket:
        raise ValueError(
            f"upload_data: bucket must be a bare bucket name; got {bucket!r}; pass "
            f"{bucket.removeprefix('gs://').split('/')[0]!r} and put the path in prefix="
        )
    frame = data if isinstance(data, pd.DataFrame) else pd.read_csv(data)
    check_training_frame(frame, target, func="upload_data")
    if storage_client is None:
        storage_client = resolve_session(session).storage_client()
    require("google.api_core.exceptions")
    from google.api_core import exceptions

    try:
        found = storage_client.lookup_bucket(bucket)
    except exceptions.GoogleAPICallError as exc:
        raise CloudError(f"upload_data: cannot read bucket {bucket!r}: {exc}") from None
    if found is None:
        raise CloudError(
            f"upload_data: bucket {bucket!r} does not exist (project "
            f"{storage_client.project!r}); create it with `gcloud storage buckets create "
            f"gs://{bucket} --location=us-central1` or pass an existing bucket"
        )
    name = f"{prefix.strip('/')}/train.csv"
    found.blob(name).upload_from_string(frame.to_csv(index=False), content_type="text/csv")
    return f"gs://{bucket}/{name}"


def create_dataset(
    gcs_source: str,
    display_name: str = "mlperf-train",
    *,
    session: VertexSession | None = None,
) -> Any:
    """Create a Vertex ``TabularDataset`` over a CSV in Cloud Storage.

    Raises
    ------
    ValueError
        *gcs_source* is not a ``gs://`` URI.
    CloudError
        The service refused or could not be reached.
    """
    if not (isinstance(gcs_source, str) and gcs_source.startswith("gs://")):
        raise ValueError(
            f"create_dataset: gcs_source must be a gs:// URI; got {gcs_source!r}; upload the "
            "CSV with upload_data() first"
        )
    s = resolve_session(session)
    require("google.cloud.aiplatform", "Vertex AI")
    from google.cloud import aiplatform

    return vertex_call(
        "create_dataset",
        s,
        aiplatform.TabularDataset.create,
        display_name=display_name,
        gcs_source=gcs_source,
        **s._kw(),
    )


# ------------------------------------------------------------------ training


def _check_fractions(fractions: Any) -> tuple[float, float, float]:
    ok = isinstance(fractions, (tuple, list)) and len(fractions) == 3
    if ok:
        ok = all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f <= 1
            for f in fractions
        )
    if not ok or not math.isclose(sum(fractions), 1.0, abs_tol=1e-9):
        raise ValueError(
            "train: fractions must be (training, validation, test), each in [0, 1], summing "
            f"to 1; got {fractions!r}; e.g. (0.8, 0.1, 0.1)"
        )
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def train(
    dataset: Any,
    target: str = "target",
    *,
    prediction_type: str = "classification",
    objective: str = "maximize-au-prc",
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    budget_milli_node_hours: int = 1000,
    column_specs: dict[str, str] | None = None,
    display_name: str = "mlperf-automl",
    session: VertexSession | None = None,
) -> Any:
    """Train an AutoML tabular model on *dataset* and return the Vertex ``Model``.

    Parameters
    ----------
    dataset:
        The ``TabularDataset`` from :func:`create_dataset`.
    target:
        Label column; it must be in the dataset's CSV header.
    prediction_type, objective:
        See :data:`OBJECTIVES`; the tutorial's choice is classification with
        ``maximize-au-prc``.
    fractions:
        (training, validation, test) fraction split.
    budget_milli_node_hours:
        Training budget; 1000 = one node hour, the service's minimum.
    column_specs:
        ``{column: "auto" | "numeric" | "categorical" | ...}``; None lets the SDK read
        the header from Cloud Storage and mark every feature ``auto``.

    Raises
    ------
    ValueError
        Unknown objective, bad fractions or budget, label not in the data.
    CloudError
        The training pipeline failed (its error message is included) or the service
        could not be reached.
    """
    if prediction_type not in OBJECTIVES:
        raise ValueError(
            f"train: prediction_type must be one of {tuple(OBJECTIVES)!r}; got {prediction_type!r}"
        )
    if objective not in OBJECTIVES[prediction_type]:
        raise ValueError(
            f"train: objective {objective!r} is not valid for {prediction_type}; use one of "
            f"{OBJECTIVES[prediction_type]!r}"
        )
    training, validation, test = _check_fractions(fractions)
    low, high = _BUDGET_RANGE
    if isinstance(budget_milli_node_hours, bool) or not isinstance(budget_milli_node_hours, int):
        raise TypeError(
            f"train: budget_milli_node_hours must be an int; got {budget_milli_node_hours!r}"
        )
    if not low <= budget_milli_node_hours <= high:
        raise ValueError(
            f"train: budget_milli_node_hours must be in [{low}, {high}] (1000 = one node "
            f"hour); got {budget_milli_node_hours!r}"
        )
    s = resolve_session(session)
    # the SDK reads the CSV header from Cloud Storage; checking here fails before any pipeline
    columns = vertex_call("train", s, lambda: list(dataset.column_names))
    if target not in columns:
        raise ValueError(
            f"train: label column {target!r} is not in the dataset (columns {columns!r}); "
            "pass target=NAME"
        )
    unknown = sorted(set(column_specs or {}) - set(columns))
    if unknown:
        raise ValueError(
            f"train: column_specs names columns not in the dataset: {unknown!r} "
            f"(columns {columns!r})"
        )
    require("google.cloud.aiplatform", "Vertex AI")
    from google.cloud import aiplatform

    job = aiplatform.AutoMLTabularTrainingJob(
        display_name=display_name,
        optimization_prediction_type=prediction_type,
        optimization_objective=objective,
        column_specs={c: t for c, t in (column_specs or {}).items() if c != target} or None,
        **s._kw(),
    )
    try:
        return vertex_call(
            "train",
            s,
            job.run,
            dataset=dataset,
            target_column=target,
            training_fraction_split=training,
            validation_fraction_split=validation,
            test_fraction_split=test,
            budget_milli_node_hours=budget_milli_node_hours,
            model_display_name=f"{display_name}-model",
        )
    except RuntimeError as exc:
        if isinstance(exc, CloudError):
            raise
        pipeline = getattr(job, "_gca_resource", None)
        error = getattr(getattr(pipeline, "error", None), "message", "") or str(exc)
        raise CloudError(
            f"train: AutoML training pipeline {getattr(pipeline, 'name', display_name)!r} "
            f"failed: {error}"
        ) from None

"""Google Vertex AI: CSV to Cloud Storage, AutoML tabular training, deploy, predict, delete.

The flow of the seed tutorial on ``google-cloud-aiplatform>=2.7``, with the steps
it skipped: the CSV is really uploaded before the dataset points at it, the model
is undeployed before its endpoint is deleted (Vertex refuses otherwise), and
predictions send named columns, as AutoML tabular models require.

Every verb takes ``session``, a :class:`VertexSession` from :func:`connect`; None
connects with the standard configuration (``aiplatform.init`` defaults:
``GOOGLE_CLOUD_PROJECT`` and Application Default Credentials).  ``connect`` also
takes ``api_endpoint`` and ``credentials``, which is how the suites point the SDK at
a local fake of the Vertex REST API; Cloud Storage follows ``STORAGE_EMULATOR_HOST``.
Vertex AutoML has no separate tuning step (the service searches itself), so
there is no ``tune`` here.
"""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlperf._optional import require
from mlperf.cloud._common import CloudError, check_training_frame, disable_telemetry

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_MACHINE_TYPE",
    "OBJECTIVES",
    "VertexSession",
    "connect",
    "create_dataset",
    "delete",
    "deploy",
    "predict",
    "train",
    "upload_data",
]

DEFAULT_MACHINE_TYPE = "n1-standard-4"
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


@dataclass(frozen=True)
class VertexSession:
    """Where Vertex calls go: project, region, credentials and (for local fakes) the API URL."""

    project: str
    location: str
    credentials: Any = None
    api_endpoint: str | None = None

    def _kw(self) -> dict[str, Any]:
        return {"project": self.project, "location": self.location, "credentials": self.credentials}

    def storage_client(self) -> Any:
        """A Cloud Storage client for this project (the emulator when STORAGE_EMULATOR_HOST is set)."""
        storage = require("google.cloud.storage", "Vertex AI data upload")
        credentials = self.credentials
        if credentials is None and os.environ.get("STORAGE_EMULATOR_HOST"):
            credentials = require("google.auth.credentials").AnonymousCredentials()
        return storage.Client(project=self.project, credentials=credentials)


def connect(
    project: str | None = None,
    location: str = "us-central1",
    *,
    credentials: Any = None,
    api_endpoint: str | None = None,
    api_transport: str | None = None,
) -> VertexSession:
    """Initialise the Vertex SDK (``aiplatform.init``) and return the session the verbs take.

    Parameters
    ----------
    project:
        Google Cloud project id; None reads ``GOOGLE_CLOUD_PROJECT`` / the ADC project.
    location:
        Region of the Vertex resources.
    credentials:
        ``google.auth`` credentials; None uses Application Default Credentials.
    api_endpoint:
        Override of the Vertex API host, e.g. ``http://127.0.0.1:8123`` for a local fake.
    api_transport:
        ``"grpc"`` or ``"rest"``; an ``http://`` endpoint implies ``"rest"``.

    Raises
    ------
    CloudError
        No project could be determined or no credentials were found.
    """
    disable_telemetry()
    aiplatform = require("google.cloud.aiplatform", "Vertex AI")
    if api_endpoint and api_endpoint.startswith("http://") and api_transport is None:
        api_transport = "rest"  # gRPC cannot speak to a plain-HTTP endpoint
    try:
        aiplatform.init(
            project=project,
            location=location,
            credentials=credentials,
            api_endpoint=api_endpoint,
            api_transport=api_transport,
        )
        config = aiplatform.initializer.global_config
        resolved = config.project
    except Exception as exc:  # google.auth raises DefaultCredentialsError, init ValueError
        raise CloudError(
            f"connect: cannot reach Vertex AI in project {project!r} ({exc}); pass project= "
            "and run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS"
        ) from exc
    return VertexSession(resolved, config.location, credentials, api_endpoint)


def _session(session: VertexSession | None) -> VertexSession:
    return session if session is not None else connect()


def _where(session: VertexSession) -> str:
    return session.api_endpoint or f"{session.location}-aiplatform.googleapis.com"


_REACHED: dict[tuple[str, int], float] = {}  # (host, port) -> monotonic time last reached


def _probe(what: str, session: VertexSession, timeout: float = 5.0) -> None:
    """Fail fast when the API host does not accept connections.

    The SDK retries every read for up to 120 s on connection errors; one TCP
    connect (remembered for a minute) turns that wait into an immediate, clear error.
    """
    where = _where(session)
    url = urlsplit(where if "//" in where else f"https://{where}")
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    now = time.monotonic()
    if now - _REACHED.get((host, port), -math.inf) < 60:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise CloudError(
            f"{what}: Vertex AI at {_where(session)!r} is unreachable ({exc}); check the "
            "network, the region and api_endpoint"
        ) from exc
    _REACHED[(host, port)] = now


def _call(what: str, session: VertexSession, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an SDK call, turning transport and API failures into a CloudError naming *what*."""
    exceptions = require("google.api_core.exceptions")
    requests = require("requests")
    _probe(what, session)
    try:
        return fn(*args, **kwargs)
    except (requests.exceptions.ConnectionError, exceptions.RetryError) as exc:
        raise CloudError(
            f"{what}: Vertex AI at {_where(session)!r} is unreachable ({exc}); check the "
            "network, the region and api_endpoint"
        ) from exc
    except exceptions.GoogleAPICallError as exc:
        raise CloudError(f"{what}: Vertex AI refused the request: {exc}") from exc


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
        storage_client = _session(session).storage_client()
    exceptions = require("google.api_core.exceptions")
    try:
        found = storage_client.lookup_bucket(bucket)
    except exceptions.GoogleAPICallError as exc:
        raise CloudError(f"upload_data: cannot read bucket {bucket!r}: {exc}") from exc
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
    s = _session(session)
    aiplatform = require("google.cloud.aiplatform", "Vertex AI")
    return _call(
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
    s = _session(session)
    # the SDK reads the CSV header from Cloud Storage; checking here fails before any pipeline
    columns = _call("train", s, lambda: list(dataset.column_names))
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
    aiplatform = require("google.cloud.aiplatform", "Vertex AI")
    job = aiplatform.AutoMLTabularTrainingJob(
        display_name=display_name,
        optimization_prediction_type=prediction_type,
        optimization_objective=objective,
        column_specs={c: t for c, t in (column_specs or {}).items() if c != target} or None,
        **s._kw(),
    )
    try:
        return _call(
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
        ) from exc


# ------------------------------------------------------------------ serving


def deploy(
    model: Any,
    *,
    machine_type: str = DEFAULT_MACHINE_TYPE,
    accelerator_type: str | None = None,
    accelerator_count: int = 0,
    min_replica_count: int = 1,
    max_replica_count: int = 1,
    display_name: str = "mlperf-endpoint",
    session: VertexSession | None = None,
) -> Any:
    """Create an endpoint and deploy *model* to it on dedicated machines; return the endpoint.

    If deploying fails after the endpoint exists, the endpoint is deleted before the
    error is raised, so nothing is left billing.

    Parameters
    ----------
    machine_type, accelerator_type, accelerator_count:
        The machine spec, e.g. ``"n1-standard-4"``, ``"NVIDIA_TESLA_T4"``, 1.  Check that
        the model type can use an accelerator: AutoML tabular models serve on CPU.
    min_replica_count, max_replica_count:
        Autoscaling bounds.

    Raises
    ------
    ValueError
        An accelerator type without a count (or the reverse), or bad replica counts.
    CloudError
        Creating the endpoint or deploying failed; the message says what was cleaned up.
    """
    if bool(accelerator_type) != (accelerator_count > 0):
        raise ValueError(
            "deploy: accelerator_type and accelerator_count go together; got "
            f"accelerator_type={accelerator_type!r}, accelerator_count={accelerator_count!r}; "
            "e.g. accelerator_type='NVIDIA_TESLA_T4', accelerator_count=1"
        )
    if not 1 <= min_replica_count <= max_replica_count:
        raise ValueError(
            "deploy: need 1 <= min_replica_count <= max_replica_count; got "
            f"{min_replica_count!r}, {max_replica_count!r}"
        )
    s = _session(session)
    aiplatform = require("google.cloud.aiplatform", "Vertex AI")
    endpoint = _call("deploy", s, aiplatform.Endpoint.create, display_name=display_name, **s._kw())
    try:
        _call(
            "deploy",
            s,
            model.deploy,
            endpoint=endpoint,
            machine_type=machine_type,
            accelerator_type=accelerator_type,
            accelerator_count=accelerator_count or None,
            min_replica_count=min_replica_count,
            max_replica_count=max_replica_count,
            traffic_percentage=100,
        )
    except Exception as exc:
        try:
            endpoint.delete(force=True)
            cleaned = f"endpoint {endpoint.resource_name!r} was deleted"
        except Exception as cleanup:  # noqa: BLE001 -- report both: the user must delete it by hand
            cleaned = f"deleting endpoint {endpoint.resource_name!r} also failed ({cleanup}); delete it by hand"
        raise CloudError(
            f"deploy: deploying model {getattr(model, 'resource_name', model)!r} failed ({exc}); "
            f"{cleaned}"
        ) from exc
    return endpoint


def _instances(rows: pd.DataFrame) -> list[dict[str, Any]]:
    # AutoML tabular reads every CSV column as text; repr keeps floats exact, null is "missing"
    out = []
    for record in rows.to_dict(orient="records"):
        out.append(
            {
                str(k): None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for k, v in record.items()
            }
        )
    return out


def predict(
    endpoint: Any,
    rows: pd.DataFrame,
    *,
    batch_size: int = 500,
    session: VertexSession | None = None,
) -> pd.DataFrame:
    """Online predictions for *rows*; one output row per input row, same index.

    Parameters
    ----------
    endpoint:
        The ``Endpoint`` from :func:`deploy`, or its resource name.
    rows:
        Feature columns named as in training (AutoML tabular needs the names; a bare
        array, as the seed tutorial passes, is refused).
    batch_size:
        Rows per request (Vertex caps a request at 1.5 MB).

    Returns
    -------
    DataFrame
        Classification: ``label`` (the top class, as a string) and ``score`` (its
        probability); regression: ``value``.

    Raises
    ------
    TypeError
        *rows* is not a DataFrame.
    ValueError
        *rows* is empty.
    CloudError
        The endpoint is unreachable, refused, or answered a different number of rows.
    """
    import pandas as pd

    if not isinstance(rows, pd.DataFrame):
        raise TypeError(
            f"predict: AutoML tabular models need named columns; got {type(rows).__name__}; "
            "pass a DataFrame with the training feature columns"
        )
    if len(rows) == 0:
        raise ValueError(f"predict: no rows to predict (columns {list(rows.columns)!r})")
    s = _session(session)
    if isinstance(endpoint, str):
        aiplatform = require("google.cloud.aiplatform", "Vertex AI")
        endpoint = _call("predict", s, aiplatform.Endpoint, endpoint, **s._kw())
    out: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        batch = _instances(rows.iloc[start : start + batch_size])
        reply = _call("predict", s, endpoint.predict, instances=batch)
        if len(reply.predictions) != len(batch):
            raise CloudError(
                f"predict: endpoint {endpoint.resource_name!r} answered "
                f"{len(reply.predictions)} predictions for {len(batch)} rows"
            )
        out.extend(_parse_prediction(p) for p in reply.predictions)
    return pd.DataFrame(out, index=rows.index)


def _parse_prediction(p: Any) -> dict[str, Any]:
    if isinstance(p, dict) and "classes" in p and "scores" in p:
        scores = [float(x) for x in p["scores"]]
        best = max(range(len(scores)), key=scores.__getitem__)
        return {"label": str(p["classes"][best]), "score": scores[best]}
    if isinstance(p, dict) and "value" in p:
        return {"value": float(p["value"])}
    raise CloudError(f"predict: unexpected prediction format {p!r}")


def delete(
    endpoint: Any,
    *,
    model: Any = None,
    dataset: Any = None,
    session: VertexSession | None = None,
) -> list[str]:
    """Undeploy every model from *endpoint*, delete it, then *model* and *dataset* if given.

    Returns
    -------
    list of str
        Resource names deleted, in order.

    Raises
    ------
    CloudError
        A delete failed; resources before it in the order above are already gone.
    """
    s = _session(session)
    aiplatform = require("google.cloud.aiplatform", "Vertex AI")
    if isinstance(endpoint, str):
        endpoint = _call("delete", s, aiplatform.Endpoint, endpoint, **s._kw())
    _call("delete", s, endpoint.undeploy_all)  # Vertex refuses to delete an endpoint in use
    gone = []
    for resource in (endpoint, model, dataset):
        if resource is not None:
            name = resource.resource_name
            _call("delete", s, resource.delete)
            gone.append(name)
    return gone

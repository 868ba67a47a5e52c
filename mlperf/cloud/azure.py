"""Azure Machine Learning (SDK v2, ``azure-ai-ml``): upload, train, tune, register, deploy, predict, delete.

The seed tutorial used SDK v1 (``azureml-core``), out of support since 2026-06-30
and not installable beside numpy 2 / pandas 3.  Here the same flow runs on SDK v2:
the CSV goes to Blob Storage and becomes a ``uri_file`` data asset; a ``command()``
job runs mlperf's training script (:func:`mlperf.cloud.training_script`, the one
:func:`mlperf.cloud.run_local` runs with ``provider="azure"``) in an environment
built from a conda spec pinned to the versions installed here; ``.sweep()``
searches the tutorial's space; the best model is registered and served by a
managed online endpoint whose scoring script is the same file (``init``/``run``).

Every verb takes ``ml_client``, an ``azure.ai.ml.MLClient``; None builds one with
:func:`connect` (``config.json`` + ``DefaultAzureCredential``), lazily.  Blob
uploads take a ``BlobServiceClient`` or a connection string, so they run against
Azurite as well as Azure.  SDK telemetry is off.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud import training_script
from mlperf.cloud._common import (
    AZURE_CLIENT_KWARGS,
    DEFAULT_MAX_JOBS,
    DEFAULT_MAX_PARALLEL_JOBS,
    DEFAULT_OBJECTIVE,
    CloudError,
    check_ranges,
    check_training_frame,
    disable_telemetry,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    import numpy as np
    import pandas as pd

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_COMPUTE",
    "DEFAULT_INSTANCE_TYPE",
    "best_trial",
    "conda_spec",
    "connect",
    "delete",
    "deploy",
    "environment",
    "predict",
    "register_model",
    "train",
    "tune",
    "upload_data",
]

BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
DEFAULT_COMPUTE = "cpu-cluster"
DEFAULT_INSTANCE_TYPE = "Standard_DS3_v2"
DEFAULT_HYPERPARAMETERS: dict[str, int] = {"n_estimators": 100, "max_depth": 10}
_ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
_FAILED = {"Failed", "Canceled", "NotResponding"}


def connect(config_path: str | os.PathLike[str] | None = None, *, credential: Any = None) -> Any:
    """An ``MLClient`` from the workspace's ``config.json``, with telemetry off.

    Parameters
    ----------
    config_path:
        The ``config.json`` (or a directory to search upwards from); None searches from
        the working directory, as ``MLClient.from_config`` does.
    credential:
        An ``azure.core`` token credential; None uses ``DefaultAzureCredential``
        (environment, managed identity, ``az login``).

    Raises
    ------
    CloudError
        No config file was found or it is malformed.
    """
    disable_telemetry()
    ml = require("azure.ai.ml", "Azure ML")
    if credential is None:
        credential = require("azure.identity", "Azure ML").DefaultAzureCredential()
    try:
        return ml.MLClient.from_config(
            credential=credential, path=config_path, **AZURE_CLIENT_KWARGS
        )
    except Exception as exc:  # the SDK raises its own ValidationException for a missing file
        raise CloudError(
            f"connect: no Azure ML workspace config at {str(config_path or os.getcwd())!r} ({exc}); "
            "download config.json from the workspace's overview page in the Azure portal, "
            "or pass ml_client=MLClient(credential, subscription_id, resource_group, workspace)"
        ) from exc


def _client(ml_client: Any) -> Any:
    return ml_client if ml_client is not None else connect()


def _azure_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an SDK call, turning Azure transport and service errors into a CloudError."""
    errors = require("azure.core.exceptions", "Azure ML")
    try:
        return fn(*args, **kwargs)
    except errors.ServiceRequestError as exc:
        raise CloudError(
            f"{what}: Azure is unreachable ({exc}); check the network and the endpoint"
        ) from exc
    except errors.ResourceNotFoundError as exc:
        raise CloudError(f"{what}: not found ({exc.message})") from exc
    except errors.HttpResponseError as exc:
        raise CloudError(f"{what}: Azure refused the request ({exc.message})") from exc


# ------------------------------------------------------------------ data


def upload_data(
    data: pd.DataFrame | str | os.PathLike[str],
    container: str,
    blob_name: str = "mlperf/train/train.csv",
    *,
    blob_service: Any = None,
    connection_string: str | None = None,
    target: str = "target",
    asset_name: str = "mlperf-train",
    datastore: str | None = None,
    ml_client: Any = None,
) -> Any:
    """Upload a training CSV to Blob Storage and describe it as a ``uri_file`` data asset.

    Parameters
    ----------
    data:
        A DataFrame (written without its index) or a path to a CSV file.
    container, blob_name:
        Where it goes; the container must exist (it is never created silently).
    blob_service, connection_string:
        A ``BlobServiceClient``, or a connection string to build one (Azurite's works).
    datastore:
        A workspace datastore over *container*: the asset then points at
        ``azureml://datastores/<datastore>/paths/<blob_name>``; None uses the blob's URL.
    ml_client:
        When given, the asset is registered (``ml_client.data.create_or_update``).

    Returns
    -------
    azure.ai.ml.entities.Data
        The asset (registered when *ml_client* was given): pass it to :func:`train`.

    Raises
    ------
    ValueError
        Empty frame, missing label column, or neither client nor connection string.
    CloudError
        The container does not exist or the storage account refused the upload.
    """
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.read_csv(data)
    check_training_frame(frame, target, func="upload_data")
    if blob_service is None:
        blob = require("azure.storage.blob", "Azure Blob Storage upload")
        if connection_string is None:
            connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if not connection_string:
            raise ValueError(
                "upload_data: pass blob_service=BlobServiceClient(...) or connection_string=, or "
                "set AZURE_STORAGE_CONNECTION_STRING"
            )
        blob_service = blob.BlobServiceClient.from_connection_string(connection_string)
    client = blob_service.get_container_client(container)
    if not _azure_call("upload_data", client.exists):
        raise CloudError(
            f"upload_data: container {container!r} does not exist in storage account "
            f"{blob_service.account_name!r}; create it with `az storage container create "
            f"--name {container} --account-name {blob_service.account_name}` or pass an existing one"
        )
    uploaded = _azure_call(
        "upload_data",
        client.upload_blob,
        blob_name,
        frame.to_csv(index=False).encode(),
        overwrite=True,
    )
    ml = require("azure.ai.ml", "Azure ML")
    path = f"azureml://datastores/{datastore}/paths/{blob_name}" if datastore else uploaded.url
    asset = ml.entities.Data(
        name=asset_name,
        path=path,
        type=ml.constants.AssetTypes.URI_FILE,
        description=f"mlperf training data: {len(frame)} rows, label {target!r}",
    )
    if ml_client is not None:
        asset = _azure_call("upload_data", ml_client.data.create_or_update, asset)
    return asset


def _data_input(data: Any) -> Any:
    ml = require("azure.ai.ml", "Azure ML")
    if isinstance(data, str):
        path = data
    elif getattr(data, "version", None):  # a registered asset: refer to it by name and version
        path = f"azureml:{data.name}:{data.version}"
    else:
        path = data.path
    return ml.Input(type=ml.constants.AssetTypes.URI_FILE, path=path)


# ------------------------------------------------------------------ environment


def conda_spec(packages: tuple[str, ...] = ("scikit-learn", "pandas", "joblib")) -> dict[str, Any]:
    """The conda spec of the training/serving environment, pinned to the versions installed here.

    The job then runs the code that :func:`mlperf.cloud.run_local` tested locally.
    ``mlflow`` and ``azureml-mlflow`` are added (unpinned when not installed here):
    the script logs ``accuracy`` through them, which is where a sweep reads its metric.
    """
    pins = []
    for name in (*packages, "mlflow", "azureml-mlflow"):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "name": "mlperf-sklearn",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": pins}],
    }


def environment(spec: Mapping[str, Any] | None = None, image: str = BASE_IMAGE) -> Any:
    """An Azure ML ``Environment``: *image* plus the conda spec (default :func:`conda_spec`)."""
    ml = require("azure.ai.ml", "Azure ML")
    return ml.entities.Environment(
        name="mlperf-sklearn", image=image, conda_file=dict(spec or conda_spec())
    )


@contextmanager
def _staged(script: str | os.PathLike[str] | None) -> Iterator[Path]:
    """A directory holding only the script: Azure uploads the whole code directory."""
    src = Path(script) if script is not None else training_script()
    if not src.is_file():
        raise FileNotFoundError(f"training script {str(src)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix="mlperf-azure-code-"))
    try:
        shutil.copyfile(src, tmp / src.name)
        yield tmp / src.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------ training


def _command(
    data: Any, hps: Mapping[str, Any], code: Path, env: Any, compute: str, name: str
) -> Any:
    ml = require("azure.ai.ml", "Azure ML")
    flags = " ".join(f"--{k} ${{{{inputs.{k}}}}}" for k in hps)
    return ml.command(
        code=str(code.parent),
        command=f"python {code.name} --data ${{{{inputs.data}}}} {flags} --model_dir ${{{{outputs.model}}}}",
        inputs={"data": _data_input(data), **hps},
        outputs={"model": ml.Output(type=ml.constants.AssetTypes.URI_FOLDER)},
        environment=env if env is not None else environment(),
        compute=compute,
        experiment_name="mlperf",
        display_name=name,
    )


def _check_hyperparameters(hps: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(hps)
    for key, value in out.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"train: hyper-parameter name must be an identifier; got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise TypeError(
                f"train: hyper-parameter {key!r} must be a number or string; got {value!r}"
            )
    if "n_estimators" in out and not (
        isinstance(out["n_estimators"], int) and out["n_estimators"] >= 1
    ):
        raise ValueError(f"train: n_estimators must be an int >= 1; got {out['n_estimators']!r}")
    return out


def _submit(what: str, ml_client: Any, job: Any, wait: bool) -> Any:
    submitted = _azure_call(what, ml_client.jobs.create_or_update, job)
    if not wait:
        return submitted
    try:
        ml_client.jobs.stream(submitted.name)  # raises JobException with the run's error
    except Exception as exc:
        raise CloudError(f"{what}: job {submitted.name!r} failed: {_job_error(exc)}") from exc
    final = _azure_call(what, ml_client.jobs.get, submitted.name)
    if final.status in _FAILED:
        raise CloudError(
            f"{what}: job {submitted.name!r} ended {final.status}; see {final.studio_url}"
        )
    return final


def _job_error(exc: Exception) -> str:
    """The run's error message out of the SDK's ``Exception : {json}`` wrapping."""
    text = str(exc)
    start = text.find("{")
    if start >= 0:
        try:
            error = json.loads(text[start : text.rfind("}") + 1])
        except ValueError:
            return text.strip()
        if isinstance(error, dict):
            inner = error.get("error", error)
            return str(inner.get("message", error)) if isinstance(inner, dict) else str(error)
    return text.strip()


def train(
    data: Any,
    *,
    hyperparameters: Mapping[str, Any] | None = None,
    compute: str = DEFAULT_COMPUTE,
    env: Any = None,
    script: str | os.PathLike[str] | None = None,
    wait: bool = True,
    ml_client: Any = None,
) -> Any:
    """Run the training script as an Azure ML command job; return the finished job.

    Parameters
    ----------
    data:
        The asset from :func:`upload_data` (or a ``uri_file`` path such as ``azureml:name:1``).
    hyperparameters:
        Passed as ``--name value`` flags; default ``n_estimators=100, max_depth=10``.
    compute:
        Name of the workspace's compute cluster.
    env:
        An ``Environment``; default :func:`environment`.
    script:
        The training script; default :func:`mlperf.cloud.training_script`.
    wait:
        Stream the job until it ends (the default) or return it as submitted.

    Raises
    ------
    ValueError
        Malformed hyper-parameters.
    CloudError
        The job failed (its error is included) or Azure refused it.
    """
    ml_client = _client(ml_client)
    hps = _check_hyperparameters(
        DEFAULT_HYPERPARAMETERS if hyperparameters is None else hyperparameters
    )
    with _staged(script) as code:
        job = _command(data, hps, code, env, compute, "mlperf-train")
        return _submit("train", ml_client, job, wait)


def tune(
    data: Any,
    *,
    ranges: Mapping[str, Any] | None = None,
    objective: str = DEFAULT_OBJECTIVE,
    goal: str = "maximize",
    max_total_trials: int = DEFAULT_MAX_JOBS,
    max_concurrent_trials: int = DEFAULT_MAX_PARALLEL_JOBS,
    sampling_algorithm: str = "random",
    timeout_s: int = 7200,
    compute: str = DEFAULT_COMPUTE,
    env: Any = None,
    script: str | os.PathLike[str] | None = None,
    wait: bool = True,
    ml_client: Any = None,
) -> Any:
    """Sweep the training job over *ranges* (default n_estimators 50..200, max_depth 5..15).

    Integer ranges become ``Choice`` over every integer (the script parses ints, and
    ``QUniform`` would hand it floats); float ranges become ``Uniform``.

    Raises
    ------
    ValueError
        A malformed range, goal or trial limits.
    CloudError
        The sweep failed or Azure refused it.
    """
    sweep = require("azure.ai.ml.sweep", "Azure ML")
    space = check_ranges(ranges, func="tune")
    if goal not in ("maximize", "minimize"):
        raise ValueError(f"tune: goal must be 'maximize' or 'minimize'; got {goal!r}")
    if not 1 <= max_concurrent_trials <= max_total_trials:
        raise ValueError(
            "tune: need 1 <= max_concurrent_trials <= max_total_trials; got "
            f"max_concurrent_trials={max_concurrent_trials!r}, max_total_trials={max_total_trials!r}"
        )
    ml_client = _client(ml_client)
    search = {
        name: sweep.Choice(values=list(range(lo, hi + 1)))
        if isinstance(lo, int)
        else sweep.Uniform(min_value=lo, max_value=hi)
        for name, (lo, hi) in space.items()
    }
    defaults = {name: lo for name, (lo, _hi) in space.items()}
    with _staged(script) as code:
        base = _command(data, defaults, code, env, compute, "mlperf-sweep")
        job = base(**search).sweep(
            compute=compute,
            sampling_algorithm=sampling_algorithm,
            primary_metric=objective,
            goal=goal.capitalize(),
        )
        job.set_limits(
            max_total_trials=max_total_trials,
            max_concurrent_trials=max_concurrent_trials,
            timeout=timeout_s,
        )
        job.display_name = job.experiment_name = "mlperf-sweep"
        return _submit("tune", ml_client, job, wait)


def best_trial(sweep_job: Any, *, ml_client: Any = None) -> str:
    """Name of the best trial of a finished sweep (its ``best_child_run_id``)."""
    name = sweep_job if isinstance(sweep_job, str) else sweep_job.name
    job = _azure_call("best_trial", _client(ml_client).jobs.get, name)
    best = (job.properties or {}).get("best_child_run_id")
    if not best:
        raise CloudError(
            f"best_trial: sweep {name!r} has no best trial yet (status {job.status!r}); wait for it "
            "to complete, and check that the script logs the primary metric through MLflow"
        )
    return str(best)


def register_model(
    job: Any,
    *,
    name: str = "mlperf-forest",
    output: str = "model",
    ml_client: Any = None,
) -> Any:
    """Register the ``model`` output of a finished training job (or trial) as a custom model."""
    ml = require("azure.ai.ml", "Azure ML")
    ml_client = _client(ml_client)
    job_name = job if isinstance(job, str) else job.name
    status = getattr(job, "status", "Completed")
    if status != "Completed":
        raise CloudError(
            f"register_model: job {job_name!r} is {status!r}, not Completed; wait for it"
        )
    model = ml.entities.Model(
        name=name,
        path=f"azureml://jobs/{job_name}/outputs/{output}",
        type=ml.constants.AssetTypes.CUSTOM_MODEL,
        description=f"random forest trained by job {job_name}",
    )
    return _azure_call("register_model", ml_client.models.create_or_update, model)


# ------------------------------------------------------------------ serving


def deploy(
    model: Any,
    endpoint_name: str,
    *,
    deployment_name: str = "blue",
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    auth_mode: str = "key",
    env: Any = None,
    script: str | os.PathLike[str] | None = None,
    ml_client: Any = None,
) -> Any:
    """Create a managed online endpoint serving *model* through the script's ``init``/``run``.

    The deployment takes all traffic.  If creating it fails, the endpoint (and any
    partial deployment) is deleted before the error is raised.

    Raises
    ------
    ValueError
        An invalid endpoint name, instance count or auth mode.
    CloudError
        Azure refused; the message says what was cleaned up.
    """
    if not isinstance(endpoint_name, str) or not _ENDPOINT_NAME.match(endpoint_name):
        raise ValueError(
            "deploy: endpoint_name must be 3-32 letters, digits and '-', starting with a letter; "
            f"got {endpoint_name!r}"
        )
    if not isinstance(instance_count, int) or instance_count < 1:
        raise ValueError(f"deploy: instance_count must be an int >= 1; got {instance_count!r}")
    if auth_mode not in ("key", "aml_token", "aad_token"):
        raise ValueError(
            f"deploy: auth_mode must be 'key', 'aml_token' or 'aad_token'; got {auth_mode!r}"
        )
    ml = require("azure.ai.ml", "Azure ML")
    ml_client = _client(ml_client)
    endpoint = ml.entities.ManagedOnlineEndpoint(name=endpoint_name, auth_mode=auth_mode)
    _azure_call(
        "deploy", lambda: ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    )
    try:
        with _staged(script) as code:
            deployment = ml.entities.ManagedOnlineDeployment(
                name=deployment_name,
                endpoint_name=endpoint_name,
                model=model,
                environment=env if env is not None else environment(),
                code_configuration=ml.entities.CodeConfiguration(
                    code=str(code.parent), scoring_script=code.name
                ),
                instance_type=instance_type,
                instance_count=instance_count,
            )
            _azure_call(
                "deploy",
                lambda: ml_client.online_deployments.begin_create_or_update(deployment).result(),
            )
        endpoint.traffic = {deployment_name: 100}
        _azure_call(
            "deploy", lambda: ml_client.online_endpoints.begin_create_or_update(endpoint).result()
        )
    except Exception as exc:
        try:
            ml_client.online_endpoints.begin_delete(name=endpoint_name).result()
            cleaned = f"endpoint {endpoint_name!r} and its deployments were deleted"
        except Exception as cleanup:  # noqa: BLE001 -- report both: the user must delete it by hand
            cleaned = (
                f"deleting endpoint {endpoint_name!r} also failed ({cleanup}); delete it by hand"
            )
        raise CloudError(
            f"deploy: deployment {deployment_name!r} failed ({exc}); {cleaned}"
        ) from exc
    return endpoint


def predict(
    endpoint_name: str,
    rows: pd.DataFrame | np.ndarray,
    *,
    deployment_name: str | None = None,
    ml_client: Any = None,
) -> np.ndarray:
    """Invoke the endpoint on *rows* (features in training order); one prediction per row.

    Raises
    ------
    ValueError
        *rows* is empty or not two-dimensional.
    CloudError
        The endpoint is unreachable, missing, refused, or answered the wrong number of rows.
    """
    import numpy as np

    matrix = np.asarray(rows, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"predict: rows must be a non-empty 2-D table; got shape {matrix.shape!r}")
    ml_client = _client(ml_client)
    with tempfile.TemporaryDirectory(prefix="mlperf-azure-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"data": matrix.tolist()}))
        reply = _azure_call(
            f"predict on endpoint {endpoint_name!r}",
            ml_client.online_endpoints.invoke,
            endpoint_name=endpoint_name,
            request_file=str(request),
            deployment_name=deployment_name,
        )
    values = json.loads(reply) if isinstance(reply, str) else reply
    if isinstance(values, str):  # a scoring script returning json.dumps(...) is encoded twice
        values = json.loads(values)
    if not isinstance(values, list) or len(values) != len(matrix):
        raise CloudError(
            f"predict: endpoint {endpoint_name!r} answered {str(values)[:200]!r} for {len(matrix)} rows"
        )
    return np.asarray(values)


def delete(endpoint_name: str, *, ml_client: Any = None) -> bool:
    """Delete the endpoint and all its deployments; False when it did not exist."""
    errors = require("azure.core.exceptions", "Azure ML")
    ml_client = _client(ml_client)
    try:
        ml_client.online_endpoints.begin_delete(name=endpoint_name).result()
    except errors.ResourceNotFoundError:
        return False
    except errors.AzureError as exc:
        raise CloudError(f"delete: deleting endpoint {endpoint_name!r} failed: {exc}") from exc
    return True

"""Azure ML data, training and tuning: upload_data, train, tune, best_trial, register_model."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud.azure._base import (
    azure_call,
    check_names,
    environment,
    resolve_client,
    staged,
)
from mlperf.cloud.common import (
    DEFAULT_MAX_JOBS,
    DEFAULT_MAX_PARALLEL_JOBS,
    DEFAULT_OBJECTIVE,
    CloudError,
    check_ranges,
    check_training_frame,
    connect_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd
    from azure.ai.ml import MLClient

__all__ = [
    "DEFAULT_COMPUTE",
    "best_trial",
    "register_model",
    "train",
    "tune",
    "upload_data",
]

DEFAULT_COMPUTE = "cpu-cluster"
DEFAULT_HYPERPARAMETERS: dict[str, int] = {"n_estimators": 100, "max_depth": 10}
_FAILED = {"Failed", "Canceled", "NotResponding"}


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
    ml_client: MLClient | None = None,
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
        The storage account does not answer within ``$MLPERF_CONNECT_TIMEOUT`` seconds
        (default 5; the message names its URL), the container does not exist, or the
        account refused the upload.
    """
    import pandas as pd

    frame = data if isinstance(data, pd.DataFrame) else pd.read_csv(data)
    check_training_frame(frame, target, func="upload_data")
    if blob_service is None:
        require("azure.storage.blob", "Azure Blob Storage upload")
        from azure.storage import blob

        if connection_string is None:
            connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if not connection_string:
            raise ValueError(
                "upload_data: pass blob_service=BlobServiceClient(...) or connection_string=, or "
                "set AZURE_STORAGE_CONNECTION_STRING"
            )
        blob_service = blob.BlobServiceClient.from_connection_string(connection_string)
    client = blob_service.get_container_client(container)
    # The first contact tries once, within MLPERF_CONNECT_TIMEOUT: the SDK's own policy
    # retried a refused connection for 85 s and waited minutes on a silent endpoint.
    timeout = connect_timeout()
    first_contact = {
        "retry_connect": 0,
        "retry_read": 0,
        "connection_timeout": timeout,
        "read_timeout": 2 * timeout,
    }
    where = f"upload_data to the storage account at {blob_service.url!r}"
    if not azure_call(where, client.exists, **first_contact):
        raise CloudError(
            f"upload_data: container {container!r} does not exist in storage account "
            f"{blob_service.account_name!r}; create it with `az storage container create "
            f"--name {container} --account-name {blob_service.account_name}` or pass an existing "
            "one"
        )
    uploaded = azure_call(
        "upload_data",
        client.upload_blob,
        blob_name,
        frame.to_csv(index=False).encode(),
        overwrite=True,
    )
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

    path = f"azureml://datastores/{datastore}/paths/{blob_name}" if datastore else uploaded.url
    asset = ml.entities.Data(
        name=asset_name,
        path=path,
        type=ml.constants.AssetTypes.URI_FILE,
        description=f"mlperf training data: {len(frame)} rows, label {target!r}",
    )
    if ml_client is not None:
        asset = azure_call("upload_data", ml_client.data.create_or_update, asset)
    return asset


def _data_input(data: Any) -> Any:
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

    if isinstance(data, str):
        path = data
    elif getattr(data, "version", None):  # a registered asset: refer to it by name and version
        path = f"azureml:{data.name}:{data.version}"
    else:
        path = data.path
    return ml.Input(type=ml.constants.AssetTypes.URI_FILE, path=path)


# ------------------------------------------------------------------ training


def _command(
    data: Any, hps: Mapping[str, Any], code: Path, env: Any, compute: str, name: str
) -> Any:
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

    flags = " ".join(f"--{k} ${{{{inputs.{k}}}}}" for k in hps)
    return ml.command(
        code=str(code.parent),
        command=(
            f"python {code.name} --data ${{{{inputs.data}}}} {flags} "
            f"--model_dir ${{{{outputs.model}}}}"
        ),
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


def _submit(what: str, ml_client: MLClient, job: Any, wait: bool) -> Any:
    submitted = azure_call(what, ml_client.jobs.create_or_update, job)
    if not wait:
        return submitted
    try:
        ml_client.jobs.stream(submitted.name)  # raises JobException with the run's error
    except Exception as exc:  # noqa: BLE001 - any SDK failure: a redacted CloudError
        raise CloudError(f"{what}: job {submitted.name!r} failed: {_job_error(exc)}") from None
    final = azure_call(what, ml_client.jobs.get, submitted.name)
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
    ml_client: MLClient | None = None,
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
    hps = _check_hyperparameters(
        DEFAULT_HYPERPARAMETERS if hyperparameters is None else hyperparameters
    )
    check_names(hps, script, "train")
    ml_client = resolve_client(ml_client)
    with staged(script) as code:
        job = _command(data, hps, code, env, compute, "mlperf-train")
        return _submit("train", ml_client, job, wait)


_MAX_CHOICES = 10_000


def _search_space(space: Mapping[str, tuple[int, int] | tuple[float, float]]) -> dict[str, Any]:
    require("azure.ai.ml.sweep", "Azure ML")
    from azure.ai.ml import sweep

    out: dict[str, Any] = {}
    for name, (lo, hi) in space.items():
        if isinstance(lo, int) and isinstance(hi, int):
            if hi - lo >= _MAX_CHOICES:
                raise ValueError(
                    f"tune: integer range for {name!r} spans {hi - lo + 1} values; at most "
                    f"{_MAX_CHOICES} fit a Choice; narrow it or pass floats for a Uniform range"
                )
            out[name] = sweep.Choice(values=list(range(lo, hi + 1)))
        else:
            out[name] = sweep.Uniform(min_value=float(lo), max_value=float(hi))
    return out


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
    ml_client: MLClient | None = None,
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
    space = check_ranges(ranges, func="tune")
    check_names(space, script, "tune")
    if goal not in ("maximize", "minimize"):
        raise ValueError(f"tune: goal must be 'maximize' or 'minimize'; got {goal!r}")
    if not 1 <= max_concurrent_trials <= max_total_trials:
        raise ValueError(
            "tune: need 1 <= max_concurrent_trials <= max_total_trials; got "
            f"max_concurrent_trials={max_concurrent_trials!r}, "
            f"max_total_trials={max_total_trials!r}"
        )
    search = _search_space(space)
    ml_client = resolve_client(ml_client)
    defaults = {name: lo for name, (lo, _hi) in space.items()}
    with staged(script) as code:
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


def best_trial(sweep_job: Any, *, ml_client: MLClient | None = None) -> str:
    """Name of the best trial of a finished sweep (its ``best_child_run_id``)."""
    name = sweep_job if isinstance(sweep_job, str) else sweep_job.name
    job = azure_call("best_trial", resolve_client(ml_client).jobs.get, name)
    best = (job.properties or {}).get("best_child_run_id")
    if not best:
        raise CloudError(
            f"best_trial: sweep {name!r} has no best trial yet (status {job.status!r}); wait for "
            "it "
            "to complete, and check that the script logs the primary metric through MLflow"
        )
    return str(best)


def register_model(
    job: Any,
    *,
    name: str = "mlperf-forest",
    output: str = "model",
    ml_client: MLClient | None = None,
) -> Any:
    """Register the ``model`` output of a finished training job (or trial) as a custom model."""
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

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
    return azure_call("register_model", resolve_client(ml_client).models.create_or_update, model)

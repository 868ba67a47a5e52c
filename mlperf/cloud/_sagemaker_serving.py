"""SageMaker serving and clean-up with plain boto3: deploy, predict, delete.

The SDK v3 deploy classes cannot be pointed at a local server, and a deployment
is three calls anyway; doing them here lets a failure undo exactly what was made.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud import training_script
from mlperf.cloud._common import CloudError
from mlperf.cloud._sagemaker_base import (
    _TERMINAL,
    DEFAULT_INSTANCE_TYPE,
    Deployment,
    TrainingJob,
    TuningJob,
    _boto,
    _not_found,
    _region,
    _role,
    _split_s3,
    _unique,
    _unsupported,
    log,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["delete", "deploy", "predict"]


# ------------------------------------------------------------------ serving


def _source_tarball() -> bytes:
    """sourcedir.tar.gz for the scikit-learn serving container (it imports model_fn from it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(training_script(), arcname=training_script().name)
    return buf.getvalue()


def _wait_endpoint(sm: Any, name: str, timeout: float, poll: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = sm.describe_endpoint(EndpointName=name)
        if desc["EndpointStatus"] not in {"Creating", "Updating", "SystemUpdating"}:
            return desc
        if time.monotonic() >= deadline:
            raise CloudError(
                f"deploy: endpoint {name!r} still {desc['EndpointStatus']} after {timeout} s"
            )
        time.sleep(poll)


def _endpoint_exists(sm: Any, name: str) -> dict[str, Any] | None:
    botocore = require("botocore.exceptions", "SageMaker")
    try:
        return sm.describe_endpoint(EndpointName=name)  # type: ignore[no-any-return]
    except botocore.ClientError as exc:
        if _not_found(exc):
            return None
        raise


def deploy(
    job: TrainingJob | str,
    *,
    role: str | None = None,
    endpoint_name: str | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    update: bool = False,
    timeout: float = 1800,
    poll: float = 15.0,
    session: Any = None,
) -> Deployment:
    """Serve a trained model: model, endpoint config and endpoint (plain boto3).

    Parameters
    ----------
    job:
        A :class:`TrainingJob` or a training job's name (e.g. :func:`best_training_job`).
    endpoint_name:
        Default: a new unique name.  With ``update=True`` an existing endpoint of
        that name is switched to the new model (``UpdateEndpoint``; where the endpoint
        lacks it the endpoint is deleted and re-created) and its old model and
        config are deleted.

    Raises
    ------
    CloudError
        Any step failed; whatever this call had created is deleted first, and the
        message lists it.
    """
    if instance_count < 1:
        raise ValueError(f"deploy: instance_count must be >= 1; got {instance_count!r}")
    botocore = require("botocore.exceptions", "SageMaker")
    boto = _boto(session)
    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    role = _role(role, "deploy")
    name = job.name if isinstance(job, TrainingJob) else job
    desc = sm.describe_training_job(TrainingJobName=name)
    if desc["TrainingJobStatus"] != "Completed":
        raise CloudError(
            f"deploy: training job {name!r} is {desc['TrainingJobStatus']}, not Completed"
        )
    model_data = desc["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = _split_s3(model_data, "deploy")
    endpoint_name = endpoint_name or _unique("mlperf-sklearn")
    old = _endpoint_exists(sm, endpoint_name)
    if old is not None and not update:
        raise CloudError(
            f"deploy: endpoint {endpoint_name!r} already exists; pass update=True "
            "to switch it to this model, or another endpoint_name"
        )
    model_name = _unique(endpoint_name[:40])
    code_key = f"{key.rsplit('/output/', 1)[0]}/serving/{model_name}/sourcedir.tar.gz"
    dep = Deployment(endpoint_name, f"{model_name}-config", model_name, f"s3://{bucket}/{code_key}")
    created: list[Any] = []
    try:
        s3.put_object(Bucket=bucket, Key=code_key, Body=_source_tarball())
        created.append(("code", dep.code_uri))
        sm.create_model(
            ModelName=model_name,
            ExecutionRoleArn=role,
            PrimaryContainer={
                "Image": desc["AlgorithmSpecification"]["TrainingImage"],
                "ModelDataUrl": model_data,
                "Environment": {
                    "SAGEMAKER_PROGRAM": training_script().name,
                    "SAGEMAKER_SUBMIT_DIRECTORY": dep.code_uri,
                    "SAGEMAKER_REGION": _region(boto),
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                },
            },
        )
        created.append(("model", model_name))
        sm.create_endpoint_config(
            EndpointConfigName=dep.endpoint_config_name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model_name,
                    "InitialInstanceCount": instance_count,
                    "InstanceType": instance_type,
                }
            ],
        )
        created.append(("config", dep.endpoint_config_name))
        if old is None:
            sm.create_endpoint(
                EndpointName=endpoint_name, EndpointConfigName=dep.endpoint_config_name
            )
            created.append(("endpoint", endpoint_name))
        else:
            try:
                sm.update_endpoint(
                    EndpointName=endpoint_name, EndpointConfigName=dep.endpoint_config_name
                )
            except botocore.ClientError as exc:
                if not _unsupported(exc):
                    raise
                log.warning(
                    "deploy: %s has no UpdateEndpoint; re-creating %r (it is down meanwhile)",
                    sm.meta.endpoint_url,
                    endpoint_name,
                )
                sm.delete_endpoint(EndpointName=endpoint_name)
                sm.create_endpoint(
                    EndpointName=endpoint_name, EndpointConfigName=dep.endpoint_config_name
                )
        final = _wait_endpoint(sm, endpoint_name, timeout, poll)
        if final["EndpointStatus"] != "InService":
            raise CloudError(
                f"deploy: endpoint {endpoint_name!r} is {final['EndpointStatus']}: "
                f"{final.get('FailureReason', 'no FailureReason given')}"
            )
    except Exception as exc:
        undone = _undo(sm, s3, created)
        raise CloudError(
            f"deploy: {type(exc).__name__}: {exc}; cleaned up what this call created: {undone!r}"
        ) from exc
    if old is not None:
        old_config = sm.describe_endpoint_config(EndpointConfigName=old["EndpointConfigName"])
        for variant in old_config["ProductionVariants"]:
            _delete_model(sm, s3, variant["ModelName"])
        sm.delete_endpoint_config(EndpointConfigName=old["EndpointConfigName"])
    return dep


def _undo(sm: Any, s3: Any, created: list[Any]) -> list[str]:
    botocore = require("botocore.exceptions", "SageMaker")
    undone = []
    for kind, name in reversed(created):
        try:
            if kind == "endpoint":
                sm.delete_endpoint(EndpointName=name)
            elif kind == "config":
                sm.delete_endpoint_config(EndpointConfigName=name)
            elif kind == "model":
                sm.delete_model(ModelName=name)
            else:
                s3.delete_object(
                    Bucket=_split_s3(name, "deploy")[0], Key=_split_s3(name, "deploy")[1]
                )
            undone.append(f"{kind} {name}")
        except (botocore.ClientError, botocore.BotoCoreError) as exc:  # undo the rest regardless
            log.error("deploy: could not delete %s %r: %s", kind, name, exc)
    return undone


def _delete_model(sm: Any, s3: Any, model_name: str) -> list[str]:
    botocore = require("botocore.exceptions", "SageMaker")
    try:
        model = sm.describe_model(ModelName=model_name)
    except botocore.ClientError as exc:
        if _not_found(exc):
            return []
        raise
    gone = []
    code = (
        model.get("PrimaryContainer", {}).get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
    )
    if code and code.startswith("s3://"):
        bucket, key = _split_s3(code, "delete")
        s3.delete_object(Bucket=bucket, Key=key)
        gone.append(code)
    sm.delete_model(ModelName=model_name)
    return [*gone, f"model {model_name}"]


def _rows(rows: Any) -> np.ndarray:
    import numpy as np

    arr = np.asarray(rows.to_numpy() if hasattr(rows, "to_numpy") else rows)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"predict: rows must be a non-empty 2-D table; got shape {arr.shape!r}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_):
        raise ValueError(
            f"predict: rows must be numeric (the model was trained on numbers); "
            f"got dtype {arr.dtype!r}; encode them first"
        )
    return arr


def predict(endpoint: Deployment | str, rows: Any, *, session: Any = None) -> np.ndarray:
    """Send feature rows as CSV to an endpoint; return one prediction per row.

    Raises
    ------
    ValueError
        Rows that are empty, ragged or not numeric.
    CloudError
        The endpoint does not exist or is not InService, SageMaker cannot be reached,
        or the reply does not hold one prediction per row.
    """
    import numpy as np

    botocore = require("botocore.exceptions", "SageMaker")
    name = endpoint.endpoint_name if isinstance(endpoint, Deployment) else endpoint
    arr = _rows(rows)
    boto = _boto(session)
    sm, runtime = boto.client("sagemaker"), boto.client("sagemaker-runtime")
    buf = io.StringIO()
    np.savetxt(buf, arr, delimiter=",", fmt="%.17g" if arr.dtype.kind == "f" else "%d")
    try:
        status = sm.describe_endpoint(EndpointName=name)["EndpointStatus"]
        if status != "InService":
            raise CloudError(
                f"predict: endpoint {name!r} is {status}, not InService; wait or redeploy"
            )
        reply = runtime.invoke_endpoint(
            EndpointName=name,
            Body=buf.getvalue().encode(),
            ContentType="text/csv",
            Accept="text/csv",
        )
    except botocore.ClientError as exc:
        if _not_found(exc):
            raise CloudError(
                f"predict: endpoint {name!r} does not exist; deploy() it first"
            ) from exc
        raise CloudError(f"predict: invoking {name!r} failed: {exc}") from exc
    except (botocore.EndpointConnectionError, botocore.ConnectTimeoutError) as exc:
        raise CloudError(
            f"predict: cannot reach SageMaker for endpoint {name!r} ({exc}); check "
            "the network, the region and AWS_ENDPOINT_URL"
        ) from exc
    text = reply["Body"].read().decode()
    values = _parse_predictions(text, reply.get("ContentType", "text/csv"))
    if len(values) != len(arr):
        raise CloudError(
            f"predict: endpoint {name!r} returned {len(values)} predictions for "
            f"{len(arr)} rows: {text[:200]!r}"
        )
    return values


def _parse_predictions(text: str, content_type: str) -> np.ndarray:

    import numpy as np

    if "json" in content_type:
        data = json.loads(text)
        values = data.get("predictions", data) if isinstance(data, dict) else data
    else:  # the container writes one prediction per line (np.savetxt of a 1-D array)
        values = [v.strip() for line in text.strip().splitlines() for v in line.split(",")]
    try:
        out = np.asarray(values, dtype=float)
        return out.astype(np.int64) if np.all(out == np.round(out)) else out
    except ValueError:  # string class labels
        return np.asarray(values, dtype=str)


# ------------------------------------------------------------------ clean-up


def delete(
    *resources: Deployment | TrainingJob | TuningJob | str, poll: float = 15.0, session: Any = None
) -> list[str]:
    """Delete what the other verbs created; already-deleted resources are skipped.

    A :class:`Deployment` loses its endpoint, endpoint config, model and serving
    code; a :class:`TrainingJob` or :class:`TuningJob` is stopped if still running
    (or, where the endpoint cannot stop it, waited for) and its staged code and
    output are deleted; an ``s3://bucket/prefix`` string deletes every object under it.

    Returns
    -------
    list of str
        What was deleted.
    """
    boto = _boto(session)
    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    gone: list[str] = []
    for res in resources:
        if isinstance(res, Deployment):
            gone += _delete_deployment(sm, s3, res)
        elif isinstance(res, (TrainingJob, TuningJob)):
            gone += _delete_job(sm, s3, res, poll)
        elif isinstance(res, str):
            gone += _delete_prefix(s3, *_split_s3(res, "delete"))
        else:
            raise TypeError(
                f"delete: cannot delete {res!r}; pass a Deployment, TrainingJob, "
                "TuningJob or s3:// URI"
            )
    return gone


def _delete_deployment(sm: Any, s3: Any, dep: Deployment) -> list[str]:
    botocore = require("botocore.exceptions", "SageMaker")
    gone = []
    for call, kw, label in (
        (sm.delete_endpoint, {"EndpointName": dep.endpoint_name}, "endpoint"),
        (sm.delete_endpoint_config, {"EndpointConfigName": dep.endpoint_config_name}, "config"),
    ):
        try:
            call(**kw)
            gone.append(f"{label} {next(iter(kw.values()))}")
        except botocore.ClientError as exc:
            if not _not_found(exc):
                raise
    gone += _delete_model(sm, s3, dep.model_name)
    return gone


def _delete_prefix(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i : i + 1000]]}
        )
    return [f"s3://{bucket}/{k}" for k in keys]


def _delete_job(sm: Any, s3: Any, job: TrainingJob | TuningJob, poll: float) -> list[str]:
    botocore = require("botocore.exceptions", "SageMaker")
    if isinstance(job, TrainingJob):
        describe_op, stop_op, status_key = (
            "describe_training_job",
            "stop_training_job",
            "TrainingJobStatus",
        )
        key = {"TrainingJobName": job.name}
    else:
        describe_op, stop_op, status_key = (
            "describe_hyper_parameter_tuning_job",
            "stop_hyper_parameter_tuning_job",
            "HyperParameterTuningJobStatus",
        )
        key = {"HyperParameterTuningJobName": job.name}
    desc = getattr(sm, describe_op)(**key)
    if desc[status_key] not in _TERMINAL:
        try:
            getattr(sm, stop_op)(**key)
        except botocore.ClientError as exc:
            if not _unsupported(exc):
                raise
            log.warning(
                "delete: %s cannot stop %r; waiting for it to end", sm.meta.endpoint_url, job.name
            )
        while desc[status_key] not in _TERMINAL:
            time.sleep(poll)
            desc = getattr(sm, describe_op)(**key)
    # the SDK stages code and drivers beside the user's channels; delete those and the output
    if isinstance(job, TrainingJob):
        channels = desc.get("InputDataConfig", [])
        out = f"{desc['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job.name}/"
    else:
        definition = desc["TrainingJobDefinition"]
        channels = definition.get("InputDataConfig", [])
        code = definition.get("StaticHyperParameters", {}).get("sagemaker_submit_directory", "")
        out = code.rsplit("/sourcedir/", 1)[0] + "/" if code.startswith("s3://") else ""
    uris = [
        c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in channels
        if c["ChannelName"] in {"code", "sm_drivers"} and "S3DataSource" in c.get("DataSource", {})
    ]
    gone: list[str] = []
    for uri in [*uris, out]:
        if uri:
            gone += _delete_prefix(s3, *_split_s3(uri, "delete"))
    if isinstance(job, TuningJob):
        sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
        gone.append(f"tuning job {job.name}")
    return gone

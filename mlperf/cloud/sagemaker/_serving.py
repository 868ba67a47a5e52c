"""SageMaker serving with plain boto3: deploy and predict.

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
from mlperf.cloud.common import CloudError
from mlperf.cloud.sagemaker._base import (
    DEFAULT_INSTANCE_TYPE,
    Deployment,
    TrainingJob,
    boto_session,
    log,
    not_found,
    region_of,
    role_arn,
    split_s3,
    unique_name,
    unsupported,
)
from mlperf.cloud.sagemaker._cleanup import delete_model

if TYPE_CHECKING:
    import numpy as np

__all__ = ["deploy", "predict"]


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
        if not_found(exc):
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
    boto = boto_session(session)
    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    role = role_arn(role, "deploy")
    name = job.name if isinstance(job, TrainingJob) else job
    desc = sm.describe_training_job(TrainingJobName=name)
    if desc["TrainingJobStatus"] != "Completed":
        raise CloudError(
            f"deploy: training job {name!r} is {desc['TrainingJobStatus']}, not Completed"
        )
    model_data = desc["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = split_s3(model_data, "deploy")
    endpoint_name = endpoint_name or unique_name("mlperf-sklearn")
    old = _endpoint_exists(sm, endpoint_name)
    if old is not None and not update:
        raise CloudError(
            f"deploy: endpoint {endpoint_name!r} already exists; pass update=True "
            "to switch it to this model, or another endpoint_name"
        )
    model_name = unique_name(endpoint_name[:40])
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
                    "SAGEMAKER_REGION": region_of(boto),
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
                if not unsupported(exc):
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
    except Exception as exc:  # noqa: BLE001 - any SDK failure: a redacted CloudError
        undone = _undo(sm, s3, created)
        raise CloudError(
            f"deploy: {type(exc).__name__}: {exc}; cleaned up what this call created: {undone!r}"
        ) from None
    if old is not None:
        old_config = sm.describe_endpoint_config(EndpointConfigName=old["EndpointConfigName"])
        for variant in old_config["ProductionVariants"]:
            delete_model(sm, s3, variant["ModelName"])
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
                    Bucket=split_s3(name, "deploy")[0], Key=split_s3(name, "deploy")[1]
                )
            undone.append(f"{kind} {name}")
        except (botocore.ClientError, botocore.BotoCoreError) as exc:  # undo the rest regardless
            log.error("deploy: could not delete %s %r: %s", kind, name, exc)
    return undone


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
    boto = boto_session(session)
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
        if not_found(exc):
            raise CloudError(
                f"predict: endpoint {name!r} does not exist; deploy() it first"
            ) from None
        raise CloudError(f"predict: invoking {name!r} failed: {exc}") from None
    except (botocore.EndpointConnectionError, botocore.ConnectTimeoutError) as exc:
        raise CloudError(
            f"predict: cannot reach SageMaker for endpoint {name!r} ({exc}); check "
            "the network, the region and AWS_ENDPOINT_URL"
        ) from None
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

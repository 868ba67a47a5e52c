"""SageMaker clean-up with plain boto3: delete deployments, jobs and S3 prefixes."""

from __future__ import annotations

import time
from typing import Any

from mlperf._optional import require
from mlperf.cloud.sagemaker._base import (
    TERMINAL_STATUSES,
    Deployment,
    TrainingJob,
    TuningJob,
    boto_session,
    log,
    not_found,
    split_s3,
    unsupported,
)

__all__ = ["delete", "delete_model"]


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
    boto = boto_session(session)
    sm, s3 = boto.client("sagemaker"), boto.client("s3")
    gone: list[str] = []
    for res in resources:
        if isinstance(res, Deployment):
            gone += _delete_deployment(sm, s3, res)
        elif isinstance(res, (TrainingJob, TuningJob)):
            gone += _delete_job(sm, s3, res, poll)
        elif isinstance(res, str):
            gone += _delete_prefix(s3, *split_s3(res, "delete"))
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
            if not not_found(exc):
                raise
    gone += delete_model(sm, s3, dep.model_name)
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
    if desc[status_key] not in TERMINAL_STATUSES:
        try:
            getattr(sm, stop_op)(**key)
        except botocore.ClientError as exc:
            if not unsupported(exc):
                raise
            log.warning(
                "delete: %s cannot stop %r; waiting for it to end", sm.meta.endpoint_url, job.name
            )
        while desc[status_key] not in TERMINAL_STATUSES:
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
            gone += _delete_prefix(s3, *split_s3(uri, "delete"))
    if isinstance(job, TuningJob):
        sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
        gone.append(f"tuning job {job.name}")
    return gone


def delete_model(sm: Any, s3: Any, model_name: str) -> list[str]:
    """Delete a model and the serving code it points at (nothing when it is already gone)."""
    botocore = require("botocore.exceptions", "SageMaker")
    try:
        model = sm.describe_model(ModelName=model_name)
    except botocore.ClientError as exc:
        if not_found(exc):
            return []
        raise
    gone = []
    code = (
        model.get("PrimaryContainer", {}).get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
    )
    if code and code.startswith("s3://"):
        bucket, key = split_s3(code, "delete")
        s3.delete_object(Bucket=bucket, Key=key)
        gone.append(code)
    sm.delete_model(ModelName=model_name)
    return [*gone, f"model {model_name}"]

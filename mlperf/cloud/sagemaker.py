"""Amazon SageMaker: upload, train, tune, deploy, predict and delete (SageMaker SDK v3 + boto3).

Training and tuning go through the v3 SDK (``sagemaker.train.ModelTrainer`` and
``sagemaker.train.tuner.HyperparameterTuner``) with mlperf's own training script
(:func:`mlperf.cloud.training_script`) in the stock scikit-learn image.  The
deployment (model, endpoint config, endpoint), predictions and clean-up use
plain boto3: the v3 deploy classes cannot be pointed at a local server.

Every verb takes ``session``: a ``boto3.Session`` (or anything with
``.client(name)``, or a SageMaker SDK ``Session``); None builds one from the
standard AWS configuration (environment, profile, role).  ``AWS_ENDPOINT_URL``
redirects everything, which is how the suites run it against a moto server.
The SDK's telemetry is switched off.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud import training_script
from mlperf.cloud._common import (
    DEFAULT_MAX_JOBS,
    DEFAULT_MAX_PARALLEL_JOBS,
    DEFAULT_OBJECTIVE,
    CloudError,
    check_ranges,
    check_training_frame,
    metric_regex,
    sagemaker_config_without_telemetry,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np
    import pandas as pd

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "FRAMEWORK_VERSION",
    "Deployment",
    "TrainingJob",
    "TuningJob",
    "best_training_job",
    "delete",
    "deploy",
    "image_uri",
    "make_session",
    "predict",
    "train",
    "tune",
    "tuning_results",
    "upload_data",
    "wait_for_training_job",
]

log = logging.getLogger(__name__)

FRAMEWORK_VERSION = "1.2-1"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
_ROLE_ENV = "MLPERF_SAGEMAKER_ROLE"
# error codes that only a server lacking the operation returns (moto answers 500 with an HTML page);
# AWS itself reports its own failures as InternalFailure / ServiceUnavailable
_UNSUPPORTED = {"500", "501", "NotImplemented", "NotImplementedError", "UnknownOperationException"}
_TERMINAL = {"Completed", "Failed", "Stopped"}


@dataclass(frozen=True)
class TrainingJob:
    """A training job :func:`train` started: name, image, where its model lands, last status."""

    name: str
    image_uri: str
    model_data: str
    status: str
    hyperparameters: dict[str, str]


@dataclass(frozen=True)
class TuningJob:
    """A hyper-parameter tuning job :func:`tune` started."""

    name: str
    status: str
    objective: str
    ranges: dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class Deployment:
    """What :func:`deploy` created; hand it to :func:`predict` and :func:`delete`."""

    endpoint_name: str
    endpoint_config_name: str
    model_name: str
    code_uri: str


# ------------------------------------------------------------------ sessions and helpers


def _boto(session: Any) -> Any:
    if session is None:
        return require("boto3", "SageMaker").Session()
    return getattr(session, "boto_session", session)  # a SageMaker SDK Session wraps one


def _region(boto: Any) -> str:
    region = getattr(boto, "region_name", None)
    if not region:
        raise CloudError(
            "sagemaker: no AWS region configured; set AWS_DEFAULT_REGION or pass "
            "session=boto3.Session(region_name=...)"
        )
    return str(region)


def make_session(session: Any = None, *, bucket: str | None = None) -> Any:
    """A SageMaker SDK ``Session`` with telemetry off and *bucket* as its staging bucket.

    Naming the bucket keeps the SDK from creating ``sagemaker-<region>-<account>``.
    """
    boto = _boto(session)
    helper = require("sagemaker.core.helper.session_helper", "SageMaker training")
    config = require("sagemaker.core.config.config", "SageMaker training")
    return helper.Session(
        boto_session=boto,
        default_bucket=bucket,
        sagemaker_config=sagemaker_config_without_telemetry(config.load_sagemaker_config()),
    )


def image_uri(region: str, version: str = FRAMEWORK_VERSION, instance_type: str = DEFAULT_INSTANCE_TYPE) -> str:
    """The stock scikit-learn training/serving image for *region*."""
    uris = require("sagemaker.core.image_uris", "SageMaker image lookup")
    return str(uris.retrieve("sklearn", version=version, region=region, instance_type=instance_type))


def _role(role: str | None, func: str) -> str:
    role = role or os.environ.get(_ROLE_ENV)
    if not role or not role.startswith("arn:"):
        raise ValueError(
            f"{func}: need the ARN of a SageMaker execution role; got {role!r}; pass "
            f"role='arn:aws:iam::<account>:role/<name>' or set {_ROLE_ENV}"
        )
    return role


def _error(exc: Exception) -> tuple[str, str]:
    err = getattr(exc, "response", {}).get("Error", {})
    return str(err.get("Code", type(exc).__name__)), str(err.get("Message", exc))


def _unsupported(exc: Exception) -> bool:
    return _error(exc)[0] in _UNSUPPORTED


def _not_found(exc: Exception) -> bool:
    code, message = _error(exc)
    return code in {"404", "NoSuchKey", "NoSuchBucket", "ResourceNotFound"} or (
        code == "ValidationException" and "could not find" in message.lower()
    )


def _split_s3(uri: str, func: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) < 6:
        raise ValueError(f"{func}: expected an s3://bucket/prefix URI; got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _check_bucket(s3: Any, bucket: str, func: str) -> None:
    botocore = require("botocore.exceptions", "S3")
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.ClientError as exc:
        code, _ = _error(exc)
        raise CloudError(
            f"{func}: bucket {bucket!r} does not exist or is not accessible (HTTP {code}); "
            f"create it first (aws s3 mb s3://{bucket}) or pass a bucket you own"
        ) from exc


def _unique(base: str) -> str:
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"[:63]


# ------------------------------------------------------------------ data


def upload_data(
    data: pd.DataFrame | str | os.PathLike[str],
    bucket: str,
    prefix: str = "mlperf/train",
    *,
    target: str = "target",
    session: Any = None,
) -> str:
    """Upload a training CSV to ``s3://bucket/prefix/train.csv``; return the channel URI.

    Parameters
    ----------
    data:
        A DataFrame (written without its index) or a path to a CSV file.
    bucket, prefix:
        Where it goes; the bucket must exist (it is never created silently).
    target:
        The label column the training script learns.

    Returns
    -------
    str
        ``s3://bucket/prefix/``, the URI to pass to :func:`train` and :func:`tune`.

    Raises
    ------
    ValueError
        Empty frame, missing label column, missing file.
    CloudError
        The bucket does not exist or is not accessible.
    """
    import pandas as pd

    frame = pd.read_csv(data) if not isinstance(data, pd.DataFrame) else data
    check_training_frame(frame, target, func="upload_data")
    s3 = _boto(session).client("s3")
    _check_bucket(s3, bucket, "upload_data")
    key = f"{prefix.strip('/')}/train.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=frame.to_csv(index=False).encode())
    return f"s3://{bucket}/{prefix.strip('/')}/"


# ------------------------------------------------------------------ training and tuning


def _trainer(train_uri: str, role: str | None, hps: Mapping[str, Any], instance_type: str,
             base_job_name: str, session: Any, func: str) -> tuple[Any, Any]:
    bucket, _ = _split_s3(train_uri, func)
    boto = _boto(session)
    _check_bucket(boto.client("s3"), bucket, func)
    role = _role(role, func)
    mt = require("sagemaker.train.model_trainer", "SageMaker training")
    configs = require("sagemaker.core.training.configs", "SageMaker training")
    script = training_script()
    trainer = mt.ModelTrainer(
        sagemaker_session=make_session(boto, bucket=bucket),
        role=role,
        training_image=image_uri(_region(boto), instance_type=instance_type),
        source_code=configs.SourceCode(source_dir=str(script.parent), entry_script=script.name),
        compute=configs.Compute(instance_type=instance_type, instance_count=1),
        hyperparameters={"target": "target", **dict(hps)},
        base_job_name=base_job_name,
    )
    channel = configs.InputData(channel_name="train", data_source=train_uri)
    return trainer, channel


def train(
    train_uri: str,
    *,
    role: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    base_job_name: str = "mlperf-sklearn",
    wait: bool = True,
    timeout: float | None = 3600,
    session: Any = None,
) -> TrainingJob:
    """Run mlperf's scikit-learn training script as a SageMaker training job.

    Parameters
    ----------
    train_uri:
        The ``train`` channel, as :func:`upload_data` returned it.
    role:
        Execution role ARN (default: ``$MLPERF_SAGEMAKER_ROLE``).
    hyperparameters:
        e.g. ``{"n_estimators": 100, "max_depth": 10}``; the job passes them as flags.
    wait, timeout:
        Wait for the job to end (see :func:`wait_for_training_job`).

    Raises
    ------
    CloudError
        The bucket is missing, or the job failed (the message carries its FailureReason).
    """
    trainer, channel = _trainer(train_uri, role, hyperparameters or {}, instance_type,
                                base_job_name, session, "train")
    mt = require("sagemaker.core.shapes", "SageMaker training")
    trainer.with_metric_definitions(
        [mt.MetricDefinition(name=DEFAULT_OBJECTIVE, regex=metric_regex(DEFAULT_OBJECTIVE))]
    )
    trainer.train(input_data_config=[channel], wait=False, logs=False)
    name = trainer._latest_training_job.training_job_name
    desc = (wait_for_training_job(name, timeout=timeout, session=session) if wait
            else _boto(session).client("sagemaker").describe_training_job(TrainingJobName=name))
    return TrainingJob(
        name=name,
        image_uri=desc["AlgorithmSpecification"]["TrainingImage"],
        model_data=desc.get("ModelArtifacts", {}).get("S3ModelArtifacts", ""),
        status=desc["TrainingJobStatus"],
        hyperparameters=dict(desc.get("HyperParameters", {})),
    )


def wait_for_training_job(
    name: str, *, timeout: float | None = 3600, poll: float = 15.0, session: Any = None
) -> dict[str, Any]:
    """Poll a training job until it ends; return its description.

    Raises
    ------
    CloudError
        It failed or was stopped (with SageMaker's FailureReason), or it outlived
        *timeout*: then it is stopped (``StopTrainingJob``); where the endpoint has no
        such operation the message says the job may still be running.
    """
    sm = _boto(session).client("sagemaker")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        status = desc["TrainingJobStatus"]
        if status == "Completed":
            return desc
        if status in _TERMINAL:
            raise CloudError(
                f"train: training job {name!r} ended {status}: "
                f"{desc.get('FailureReason', 'no FailureReason given')}; its log is in "
                f"CloudWatch /aws/sagemaker/TrainingJobs/{name}"
            )
        if deadline is not None and time.monotonic() >= deadline:
            botocore = require("botocore.exceptions", "SageMaker")
            try:
                sm.stop_training_job(TrainingJobName=name)
                what = "stopped it"
            except botocore.ClientError as exc:
                if not _unsupported(exc):
                    raise
                what = "could not stop it (this endpoint has no StopTrainingJob); it may still be running"
            raise CloudError(
                f"train: training job {name!r} still {status} after {timeout!r} s; {what}; "
                "raise timeout= or pass wait=False"
            )
        time.sleep(poll)


def tune(
    train_uri: str,
    *,
    role: str | None = None,
    ranges: Mapping[str, Any] | None = None,
    objective: str = DEFAULT_OBJECTIVE,
    max_jobs: int = DEFAULT_MAX_JOBS,
    max_parallel_jobs: int = DEFAULT_MAX_PARALLEL_JOBS,
    strategy: str = "Bayesian",
    hyperparameters: Mapping[str, Any] | None = None,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    base_job_name: str = "mlperf-tune",
    wait: bool = True,
    session: Any = None,
) -> TuningJob:
    """Start a hyper-parameter tuning job over the training script (maximises *objective*).

    Parameters
    ----------
    ranges:
        ``{name: (low, high)}``, inclusive; integers give an integer range
        (default ``{"n_estimators": (50, 200), "max_depth": (5, 15)}``).
    objective:
        The metric the script prints; the tuner reads it with :func:`metric_regex`.
    max_jobs, max_parallel_jobs:
        Budget (default 10 jobs, 2 at a time).

    Raises
    ------
    ValueError
        A malformed range, or max_parallel_jobs outside 1..max_jobs -- before any request.
    """
    space = check_ranges(ranges, func="tune")
    if not 1 <= max_parallel_jobs <= max_jobs:
        raise ValueError(
            f"tune: need 1 <= max_parallel_jobs <= max_jobs; got {max_parallel_jobs!r} and "
            f"{max_jobs!r}"
        )
    trainer, channel = _trainer(train_uri, role, hyperparameters or {}, instance_type,
                                "mlperf-sklearn", session, "tune")
    tuner_mod = require("sagemaker.train.tuner", "SageMaker tuning")
    param = require("sagemaker.core.parameter", "SageMaker tuning")
    sdk_ranges = {
        name: (param.IntegerParameter(lo, hi) if isinstance(lo, int)
               else param.ContinuousParameter(lo, hi))
        for name, (lo, hi) in space.items()
    }
    tuner = tuner_mod.HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=objective,
        hyperparameter_ranges=sdk_ranges,
        metric_definitions=[{"Name": objective, "Regex": metric_regex(objective)}],
        strategy=strategy,
        objective_type="Maximize",
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        base_tuning_job_name=base_job_name,
    )
    tuner.tune(inputs=[channel], wait=wait)
    job = tuner.latest_tuning_job
    return TuningJob(
        name=job.hyper_parameter_tuning_job_name,
        status=str(job.refresh().hyper_parameter_tuning_job_status),
        objective=objective,
        ranges=dict(space),
    )


def _tuning_name(job: TuningJob | str) -> str:
    return job.name if isinstance(job, TuningJob) else str(job)


def tuning_results(tuning_job: TuningJob | str, *, session: Any = None) -> pd.DataFrame:
    """Every training job of a tuning job, best first: name, status, objective, hyper-parameters.

    Uses ``ListTrainingJobsForHyperParameterTuningJob``; where the endpoint lacks it
    (moto) it falls back to the ``BestTrainingJob`` of ``DescribeHyperParameterTuningJob``
    -- one row -- and logs a warning.
    """
    import pandas as pd

    botocore = require("botocore.exceptions", "SageMaker")
    sm = _boto(session).client("sagemaker")
    name = _tuning_name(tuning_job)
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    maximize = desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"][
        "Type"] == "Maximize"
    try:
        pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue",
            SortOrder="Descending" if maximize else "Ascending",
        )
        summaries = [s for page in pages for s in page["TrainingJobSummaries"]]
    except botocore.ClientError as exc:
        if not _unsupported(exc):
            raise CloudError(f"tuning_results: listing the jobs of {name!r} failed: {exc}") from exc
        log.warning("tuning_results: %s has no ListTrainingJobsForHyperParameterTuningJob; "
                    "using DescribeHyperParameterTuningJob.BestTrainingJob", sm.meta.endpoint_url)
        summaries = [desc["BestTrainingJob"]] if desc.get("BestTrainingJob") else []
    rows = [{
        "name": s["TrainingJobName"],
        "status": s.get("TrainingJobStatus"),
        "objective": s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
        **{f"hp_{k}": v for k, v in s.get("TunedHyperParameters", {}).items()},
    } for s in summaries]
    frame = pd.DataFrame(rows, columns=None if rows else ["name", "status", "objective"])
    return frame.sort_values("objective", ascending=not maximize, na_position="last",
                             kind="stable", ignore_index=True)


def best_training_job(tuning_job: TuningJob | str, *, session: Any = None) -> str:
    """Name of the tuning job's best completed training job.

    Raises
    ------
    CloudError
        No training job has completed yet.
    """
    frame = tuning_results(tuning_job, session=session)
    done = frame[frame["status"] == "Completed"]
    if done.empty:
        raise CloudError(
            f"best_training_job: tuning job {_tuning_name(tuning_job)!r} has no completed "
            f"training job yet (statuses {frame['status'].tolist()!r}); wait for it"
        )
    return str(done["name"].iloc[0])


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
            raise CloudError(f"deploy: endpoint {name!r} still {desc['EndpointStatus']} after {timeout} s")
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
        raise CloudError(f"deploy: training job {name!r} is {desc['TrainingJobStatus']}, not Completed")
    model_data = desc["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, key = _split_s3(model_data, "deploy")
    endpoint_name = endpoint_name or _unique("mlperf-sklearn")
    old = _endpoint_exists(sm, endpoint_name)
    if old is not None and not update:
        raise CloudError(f"deploy: endpoint {endpoint_name!r} already exists; pass update=True "
                         "to switch it to this model, or another endpoint_name")
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
            ProductionVariants=[{
                "VariantName": "AllTraffic", "ModelName": model_name,
                "InitialInstanceCount": instance_count, "InstanceType": instance_type,
            }],
        )
        created.append(("config", dep.endpoint_config_name))
        if old is None:
            sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=dep.endpoint_config_name)
            created.append(("endpoint", endpoint_name))
        else:
            try:
                sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=dep.endpoint_config_name)
            except botocore.ClientError as exc:
                if not _unsupported(exc):
                    raise
                log.warning("deploy: %s has no UpdateEndpoint; re-creating %r (it is down meanwhile)",
                            sm.meta.endpoint_url, endpoint_name)
                sm.delete_endpoint(EndpointName=endpoint_name)
                sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=dep.endpoint_config_name)
        final = _wait_endpoint(sm, endpoint_name, timeout, poll)
        if final["EndpointStatus"] != "InService":
            raise CloudError(f"deploy: endpoint {endpoint_name!r} is {final['EndpointStatus']}: "
                             f"{final.get('FailureReason', 'no FailureReason given')}")
    except Exception as exc:
        undone = _undo(sm, s3, created)
        raise CloudError(f"deploy: {type(exc).__name__}: {exc}; cleaned up what this call "
                         f"created: {undone!r}") from exc
    if old is not None:
        old_config = sm.describe_endpoint_config(EndpointConfigName=old["EndpointConfigName"])
        for variant in old_config["ProductionVariants"]:
            _delete_model(sm, s3, variant["ModelName"])
        sm.delete_endpoint_config(EndpointConfigName=old["EndpointConfigName"])
    return dep


def _undo(sm: Any, s3: Any, created: list[Any]) -> list[str]:
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
                s3.delete_object(Bucket=_split_s3(name, "deploy")[0], Key=_split_s3(name, "deploy")[1])
            undone.append(f"{kind} {name}")
        except Exception as exc:  # keep undoing the rest; report what stayed
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
    code = model.get("PrimaryContainer", {}).get("Environment", {}).get("SAGEMAKER_SUBMIT_DIRECTORY")
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
        raise ValueError(f"predict: rows must be numeric (the model was trained on numbers); "
                         f"got dtype {arr.dtype!r}; encode them first")
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
            raise CloudError(f"predict: endpoint {name!r} is {status}, not InService; wait or redeploy")
        reply = runtime.invoke_endpoint(EndpointName=name, Body=buf.getvalue().encode(),
                                        ContentType="text/csv", Accept="text/csv")
    except botocore.ClientError as exc:
        if _not_found(exc):
            raise CloudError(f"predict: endpoint {name!r} does not exist; deploy() it first") from exc
        raise CloudError(f"predict: invoking {name!r} failed: {exc}") from exc
    except (botocore.EndpointConnectionError, botocore.ConnectTimeoutError) as exc:
        raise CloudError(f"predict: cannot reach SageMaker for endpoint {name!r} ({exc}); check "
                         "the network, the region and AWS_ENDPOINT_URL") from exc
    text = reply["Body"].read().decode()
    values = _parse_predictions(text, reply.get("ContentType", "text/csv"))
    if len(values) != len(arr):
        raise CloudError(f"predict: endpoint {name!r} returned {len(values)} predictions for "
                         f"{len(arr)} rows: {text[:200]!r}")
    return values


def _parse_predictions(text: str, content_type: str) -> np.ndarray:
    import json

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
            raise TypeError(f"delete: cannot delete {res!r}; pass a Deployment, TrainingJob, "
                            "TuningJob or s3:// URI")
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
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for o in page.get("Contents", [])]
    for i in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})
    return [f"s3://{bucket}/{k}" for k in keys]


def _delete_job(sm: Any, s3: Any, job: TrainingJob | TuningJob, poll: float) -> list[str]:
    botocore = require("botocore.exceptions", "SageMaker")
    if isinstance(job, TrainingJob):
        describe = lambda: sm.describe_training_job(TrainingJobName=job.name)
        status_key, stop = "TrainingJobStatus", lambda: sm.stop_training_job(TrainingJobName=job.name)
    else:
        describe = lambda: sm.describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=job.name)
        status_key = "HyperParameterTuningJobStatus"
        stop = lambda: sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
    desc = describe()
    if desc[status_key] not in _TERMINAL:
        try:
            stop()
        except botocore.ClientError as exc:
            if not _unsupported(exc):
                raise
            log.warning("delete: %s cannot stop %r; waiting for it to end", sm.meta.endpoint_url, job.name)
        while desc[status_key] not in _TERMINAL:
            time.sleep(poll)
            desc = describe()
    # the SDK stages code and drivers beside the user's channels; delete those and the output
    if isinstance(job, TrainingJob):
        channels = desc.get("InputDataConfig", [])
        out = f"{desc['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job.name}/"
    else:
        definition = desc["TrainingJobDefinition"]
        channels = definition.get("InputDataConfig", [])
        code = definition.get("StaticHyperParameters", {}).get("sagemaker_submit_directory", "")
        out = code.rsplit("/sourcedir/", 1)[0] + "/" if code.startswith("s3://") else ""
    uris = [c["DataSource"]["S3DataSource"]["S3Uri"] for c in channels
            if c["ChannelName"] in {"code", "sm_drivers"} and "S3DataSource" in c.get("DataSource", {})]
    gone: list[str] = []
    for uri in [*uris, out]:
        if uri:
            gone += _delete_prefix(s3, *_split_s3(uri, "delete"))
    if isinstance(job, TuningJob):
        sm.delete_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
        gone.append(f"tuning job {job.name}")
    return gone

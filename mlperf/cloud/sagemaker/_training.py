"""SageMaker data, training and tuning: upload_data, train, tune and their results.

Training and tuning go through the SDK v3 (``ModelTrainer``, ``HyperparameterTuner``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud import training_script, training_script_options
from mlperf.cloud.common import (
    DEFAULT_MAX_JOBS,
    DEFAULT_MAX_PARALLEL_JOBS,
    DEFAULT_OBJECTIVE,
    CloudError,
    check_ranges,
    check_training_frame,
    metric_regex,
)
from mlperf.cloud.sagemaker._base import (
    DEFAULT_INSTANCE_TYPE,
    TERMINAL_STATUSES,
    TrainingJob,
    TuningJob,
    boto_session,
    check_bucket,
    image_uri,
    log,
    make_session,
    region_of,
    role_arn,
    split_s3,
    unsupported,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

__all__ = [
    "best_training_job",
    "train",
    "tune",
    "tuning_results",
    "upload_data",
    "wait_for_training_job",
]


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
    s3 = boto_session(session).client("s3")
    check_bucket(s3, bucket, "upload_data")
    key = f"{prefix.strip('/')}/train.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=frame.to_csv(index=False).encode())
    return f"s3://{bucket}/{prefix.strip('/')}/"


# ------------------------------------------------------------------ training and tuning


def _trainer(
    train_uri: str,
    role: str | None,
    hps: Mapping[str, Any],
    instance_type: str,
    base_job_name: str,
    session: Any,
    func: str,
    target: str,
) -> tuple[Any, Any]:
    known = training_script_options()
    bad = sorted(str(k) for k in hps if k not in known)
    if bad:
        raise ValueError(
            f"{func}: mlperf's training script has no hyper-parameter {bad!r}; it takes "
            f"{sorted(known)!r}"
        )
    bucket, _ = split_s3(train_uri, func)
    boto = boto_session(session)
    check_bucket(boto.client("s3"), bucket, func)
    role = role_arn(role, func)
    mt = require("sagemaker.train.model_trainer", "SageMaker training")
    configs = require("sagemaker.core.training.configs", "SageMaker training")
    script = training_script()
    trainer = mt.ModelTrainer(
        sagemaker_session=make_session(boto, bucket=bucket),
        role=role,
        training_image=image_uri(region_of(boto), instance_type=instance_type),
        source_code=configs.SourceCode(source_dir=str(script.parent), entry_script=script.name),
        compute=configs.Compute(instance_type=instance_type, instance_count=1),
        hyperparameters={"target": target, **dict(hps)},
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
    target: str = "target",
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
    target:
        The label column (as given to :func:`upload_data`).
    wait, timeout:
        Wait for the job to end (see :func:`wait_for_training_job`).

    Raises
    ------
    CloudError
        The bucket is missing, or the job failed (the message carries its FailureReason).
    """
    trainer, channel = _trainer(
        train_uri,
        role,
        hyperparameters or {},
        instance_type,
        base_job_name,
        session,
        "train",
        target,
    )
    mt = require("sagemaker.core.shapes", "SageMaker training")
    trainer.with_metric_definitions(
        [mt.MetricDefinition(name=DEFAULT_OBJECTIVE, regex=metric_regex(DEFAULT_OBJECTIVE))]
    )
    trainer.train(input_data_config=[channel], wait=False, logs=False)
    name = trainer._latest_training_job.training_job_name
    desc = (
        wait_for_training_job(name, timeout=timeout, session=session)
        if wait
        else boto_session(session).client("sagemaker").describe_training_job(TrainingJobName=name)
    )
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
    sm = boto_session(session).client("sagemaker")
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        desc: dict[str, Any] = sm.describe_training_job(TrainingJobName=name)
        status = desc["TrainingJobStatus"]
        if status == "Completed":
            return desc
        if status in TERMINAL_STATUSES:
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
                if not unsupported(exc):
                    raise
                what = (
                    "could not stop it (this endpoint has no StopTrainingJob); "
                    "it may still be running"
                )
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
    target: str = "target",
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
    unknown = sorted(set(space) - training_script_options())
    if unknown:
        raise ValueError(
            f"tune: mlperf's training script has no hyper-parameter {unknown!r} to search; "
            f"it takes {sorted(training_script_options())!r}"
        )
    if not 1 <= max_parallel_jobs <= max_jobs:
        raise ValueError(
            f"tune: need 1 <= max_parallel_jobs <= max_jobs; got {max_parallel_jobs!r} and "
            f"{max_jobs!r}"
        )
    trainer, channel = _trainer(
        train_uri,
        role,
        hyperparameters or {},
        instance_type,
        "mlperf-sklearn",
        session,
        "tune",
        target,
    )
    tuner_mod = require("sagemaker.train.tuner", "SageMaker tuning")
    param = require("sagemaker.core.parameter", "SageMaker tuning")
    sdk_ranges = {
        name: (
            param.IntegerParameter(lo, hi)
            if isinstance(lo, int)
            else param.ContinuousParameter(lo, hi)
        )
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
    sm = boto_session(session).client("sagemaker")
    name = _tuning_name(tuning_job)
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    maximize = (
        desc["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"]
        == "Maximize"
    )
    try:
        pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
            HyperParameterTuningJobName=name,
            SortBy="FinalObjectiveMetricValue",
            SortOrder="Descending" if maximize else "Ascending",
        )
        summaries = [s for page in pages for s in page["TrainingJobSummaries"]]
    except botocore.ClientError as exc:
        if not unsupported(exc):
            raise CloudError(
                f"tuning_results: listing the jobs of {name!r} failed: {exc}"
            ) from None
        log.warning(
            "tuning_results: %s has no ListTrainingJobsForHyperParameterTuningJob; "
            "using DescribeHyperParameterTuningJob.BestTrainingJob",
            sm.meta.endpoint_url,
        )
        summaries = [desc["BestTrainingJob"]] if desc.get("BestTrainingJob") else []
    rows = [
        {
            "name": s["TrainingJobName"],
            "status": s.get("TrainingJobStatus"),
            "objective": s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
            **{f"hp_{k}": v for k, v in s.get("TunedHyperParameters", {}).items()},
        }
        for s in summaries
    ]
    frame = pd.DataFrame(rows, columns=None if rows else ["name", "status", "objective"])
    return frame.sort_values(
        "objective", ascending=not maximize, na_position="last", kind="stable", ignore_index=True
    )


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

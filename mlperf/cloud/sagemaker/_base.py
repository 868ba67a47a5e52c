"""Shared pieces of the SageMaker verbs: result records, sessions, error classification."""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from mlperf._optional import require
from mlperf.cloud.common import CloudError, sagemaker_config_without_telemetry

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "FRAMEWORK_VERSION",
    "Deployment",
    "TrainingJob",
    "TuningJob",
    "image_uri",
    "make_session",
]

log = logging.getLogger("mlperf.cloud.sagemaker")

FRAMEWORK_VERSION = "1.2-1"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
_ROLE_ENV = "MLPERF_SAGEMAKER_ROLE"
# error codes that only a server lacking the operation returns (moto answers 500 with an HTML page);
# AWS itself reports its own failures as InternalFailure / ServiceUnavailable
_UNSUPPORTED = {"500", "501", "NotImplemented", "NotImplementedError", "UnknownOperationException"}
TERMINAL_STATUSES = {"Completed", "Failed", "Stopped"}


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


def boto_session(session: Any) -> Any:
    if session is None:
        return require("boto3", "SageMaker").Session()
    return getattr(session, "boto_session", session)  # a SageMaker SDK Session wraps one


def region_of(boto: Any) -> str:
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
    boto = boto_session(session)
    helper = require("sagemaker.core.helper.session_helper", "SageMaker training")
    config = require("sagemaker.core.config.config", "SageMaker training")
    return helper.Session(
        boto_session=boto,
        default_bucket=bucket,
        sagemaker_config=sagemaker_config_without_telemetry(config.load_sagemaker_config()),
    )


def image_uri(
    region: str, version: str = FRAMEWORK_VERSION, instance_type: str = DEFAULT_INSTANCE_TYPE
) -> str:
    """The stock scikit-learn training/serving image for *region*."""
    uris = require("sagemaker.core.image_uris", "SageMaker image lookup")
    return str(
        uris.retrieve("sklearn", version=version, region=region, instance_type=instance_type)
    )


def role_arn(role: str | None, func: str) -> str:
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


def unsupported(exc: Exception) -> bool:
    return _error(exc)[0] in _UNSUPPORTED


def not_found(exc: Exception) -> bool:
    code, message = _error(exc)
    return code in {"404", "NoSuchKey", "NoSuchBucket", "ResourceNotFound"} or (
        code == "ValidationException" and "could not find" in message.lower()
    )


def split_s3(uri: str, func: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) < 6:
        raise ValueError(f"{func}: expected an s3://bucket/prefix URI; got {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def check_bucket(s3: Any, bucket: str, func: str) -> None:
    botocore = require("botocore.exceptions", "S3")
    try:
        s3.head_bucket(Bucket=bucket)
    except botocore.ClientError as exc:
        code, _ = _error(exc)
        raise CloudError(
            f"{func}: bucket {bucket!r} does not exist or is not accessible (HTTP {code}); "
            f"create it first (aws s3 mb s3://{bucket}) or pass a bucket you own"
        ) from None


def unique_name(base: str) -> str:
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"[:63]

"""AWS fixtures: one moto server per session on 127.0.0.1, reset before each test.

The server is ``moto.server.ThreadedMotoServer`` -- real HTTP, the same botocore
wire protocol as AWS -- and everything (boto3, the SageMaker SDK's own clients)
reaches it through ``AWS_ENDPOINT_URL``.  The environment is set per test with
``monkeypatch``, so a ``cloud``-marked test in the same session still talks to AWS.
Because the server runs in this process, tests can also reach into moto's backend
to put a job into a state moto never produces on its own (Failed, InProgress).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlperf._optional import require

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlperf-sagemaker"
BUCKET = "mlperf-test"


@dataclass
class Call:
    """One API call as botocore saw it: operation, request parameters, HTTP status, error code."""

    service: str
    operation: str
    params: dict[str, Any]
    status: int | None = None
    error: str | None = None


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """URL of a moto server on 127.0.0.1 and a free port, for the whole session."""
    server_mod = require("moto.server", "the offline AWS tests")
    # moto logs every request, and a traceback for each operation it lacks; the tests check those
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_post(url: str, path: str, payload: dict[str, Any] | None = None) -> None:
    """POST to moto's control API (``/moto-api/...``)."""
    data = json.dumps(payload or {}).encode()
    req = urllib.request.Request(
        url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status in (200, 201), resp.status


@pytest.fixture(scope="session")
def botocore_loader() -> Any:
    """One loader of botocore's service models for every test's session.

    The SageMaker model alone is megabytes of JSON; parsing it once instead of per
    test is the difference between seconds and a minute of CPU across the suite.
    """
    return require("botocore.loaders", "the offline AWS tests").create_loader()


@pytest.fixture
def aws(
    moto_server: str, botocore_loader: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Any:
    """A boto3 Session on a freshly reset moto server, with fake credentials."""
    boto3 = require("boto3", "the offline AWS tests")
    botocore_session = require("botocore.session", "the offline AWS tests")
    moto_post(moto_server, "/moto-api/reset")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "MLPERF_SAGEMAKER_ROLE"):
        monkeypatch.delenv(var, raising=False)
    missing = str(tmp_path / "absent")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    # no user profile, SDK defaults file or retry policy leaks in; moto answers 500 for
    # operations it lacks and retrying those only costs time
    monkeypatch.setenv("AWS_CONFIG_FILE", missing)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", missing)
    sdk_defaults = tmp_path / "sagemaker-config.yaml"  # the SDK insists the file exists
    sdk_defaults.write_text("SchemaVersion: '1.0'\n")
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(sdk_defaults))
    monkeypatch.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(sdk_defaults))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SAGEMAKER_VALIDATE_ROLE", "false")  # moto lacks iam:SimulatePrincipalPolicy
    core = botocore_session.get_session()  # fresh: its own credentials and event hooks
    core.register_component("data_loader", botocore_loader)
    return boto3.Session(botocore_session=core, region_name=REGION)


@pytest.fixture
def calls(aws: Any) -> list[Call]:
    """Every API call made through ``aws`` (and the clients the SDK builds from it), in order."""
    seen: list[Call] = []

    def before(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append(Call(model.service_model.service_name, model.name, dict(params)))

    def after(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        for call in reversed(seen):
            if call.operation == model.name and call.status is None:
                call.status = http_response.status_code
                call.error = parsed.get("Error", {}).get("Code")
                break

    aws.events.register("provide-client-params.*.*", before)
    aws.events.register("after-call.*.*", after)
    return seen


@pytest.fixture
def bucket(aws: Any) -> str:
    aws.client("s3").create_bucket(Bucket=BUCKET)
    return BUCKET


@pytest.fixture
def finished_job(aws: Any, bucket: str) -> str:
    """A completed training job made with one plain CreateTrainingJob call (no SDK staging).

    For tests about what happens after training; the SDK path itself is tested in
    test_train_creates_the_job_with_image_script_and_hyperparameters.
    """
    from mlperf.cloud.sagemaker import image_uri

    name = "mlperf-finished"
    aws.client("sagemaker").create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": image_uri(REGION), "TrainingInputMode": "File"},
        RoleArn=ROLE,
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/train/"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    return name


@pytest.fixture
def queue_predictions(moto_server: str) -> Callable[[str, str], None]:
    """Queue the body moto's InvokeEndpoint returns next (its results API)."""

    def queue(body: str, content_type: str = "text/csv") -> None:
        moto_post(
            moto_server,
            "/moto-api/static/sagemaker/endpoint-results",
            {"results": [{"Body": body, "ContentType": content_type}]},
        )

    return queue


@pytest.fixture
def moto_job() -> Callable[[str], Any]:
    """moto's in-process record of a training job, to force a status moto never sets itself."""

    def get(name: str) -> Any:
        models = require("moto.sagemaker.models", "the offline AWS tests")
        return models.sagemaker_backends[ACCOUNT][REGION].training_jobs[name]

    return get

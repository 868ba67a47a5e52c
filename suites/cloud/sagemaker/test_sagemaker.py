"""SageMaker flow against a real moto server: what lands in S3 and in SageMaker's records.

moto never runs a container: jobs complete at once and write no model, and the
endpoint answers whatever is queued.  So these tests prove the requests (image,
script, channels, ranges, objective, serving contract), the clean-up and the
error paths; the script itself is proven by run_local (suites/cloud/test_run_local.py)
and the metric regex is checked against its real output here.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlperf.cloud import CloudError, run_local, training_script
from mlperf.cloud import sagemaker as sm_mod
from mlperf.cloud.common import metric_regex

pytestmark = [pytest.mark.xdist_group("cloud-aws")]

# the same values as conftest.py (moto's default account; the bucket the `bucket` fixture makes)
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/mlperf-sagemaker"
BUCKET = "mlperf-test"


def _objects(aws: Any, prefix: str = "") -> dict[str, bytes]:
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


def _ops(calls: list[Any]) -> list[str]:
    return [c.operation for c in calls]


def _assert_nothing_left(aws: Any, keep: set[str] | frozenset[str] = frozenset()) -> None:
    sm = aws.client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert sm.list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    assert set(_objects(aws)) == set(keep)


# ------------------------------------------------------------------ upload


def test_upload_data_puts_the_exact_frame_in_s3(aws, bucket, train_frame):
    uri = sm_mod.upload_data(train_frame, bucket, "flow/train", session=aws)
    assert uri == f"s3://{bucket}/flow/train/"
    body = _objects(aws)["flow/train/train.csv"]
    back = pd.read_csv(io.BytesIO(body))
    assert_frame_equal(back, train_frame, check_dtype=False)


def test_upload_data_refuses_a_missing_bucket(make_frame, aws):
    with pytest.raises(CloudError, match=r"bucket 'no-such-bucket' does not exist.*aws s3 mb"):
        sm_mod.upload_data(make_frame(10), "no-such-bucket", session=aws)
    assert aws.client("s3").list_buckets()["Buckets"] == []  # never created behind the user's back


def test_upload_data_refuses_an_empty_frame(make_frame, aws, bucket):
    empty = make_frame(10).iloc[:0]
    with pytest.raises(ValueError, match="training frame is empty"):
        sm_mod.upload_data(empty, bucket, session=aws)
    with pytest.raises(ValueError, match="label column 'target' is not in the frame"):
        sm_mod.upload_data(make_frame(10).drop(columns="target"), bucket, session=aws)
    assert _objects(aws) == {}


# ------------------------------------------------------------------ training


def test_train_creates_the_job_with_image_script_and_hyperparameters(
    aws, bucket, calls, train_frame
):
    uri = sm_mod.upload_data(train_frame, bucket, "flow/train", session=aws)
    job = sm_mod.train(
        uri, role=ROLE, hyperparameters={"n_estimators": 120, "max_depth": 7}, session=aws
    )
    desc = aws.client("sagemaker").describe_training_job(TrainingJobName=job.name)
    assert job.status == desc["TrainingJobStatus"] == "Completed"
    assert desc["AlgorithmSpecification"]["TrainingImage"] == sm_mod.image_uri(REGION)
    assert "sagemaker-scikit-learn:1.2-1-cpu-py3" in job.image_uri
    assert desc["RoleArn"] == ROLE
    assert desc["HyperParameters"] == {"target": "target", "n_estimators": "120", "max_depth": "7"}
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in desc["InputDataConfig"]
    }
    assert channels["train"] == uri
    # the shipped script is what the job's code channel holds, byte for byte
    code = _objects(aws, channels["code"].split(f"{BUCKET}/", 1)[1])
    assert list(code.values()) == [training_script().read_bytes()]
    drivers = _objects(aws, channels["sm_drivers"].split(f"{BUCKET}/", 1)[1])
    source = next(v for k, v in drivers.items() if k.endswith("sourcecode.json"))
    assert b'"entry_script": "train_sklearn.py"' in source
    # moto overwrites MetricDefinitions in its record, so check what was sent
    create = next(c for c in calls if c.operation == "CreateTrainingJob")
    assert create.params["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "accuracy", "Regex": metric_regex("accuracy")}
    ]
    # delete takes the staged code, drivers and output, not only the data
    gone = sm_mod.delete(job, uri, session=aws)
    assert any(g.endswith("/sourcecode.json") for g in gone)
    _assert_nothing_left(aws)


def test_a_failed_training_job_surfaces_its_failure_reason(aws, bucket, moto_job, train_frame):
    uri = sm_mod.upload_data(train_frame, bucket, session=aws)
    reason = "AlgorithmError: train_sklearn: label column 'target' not in the data"

    def fail(model: Any, parsed: dict[str, Any], **_: Any) -> None:
        job = moto_job(parsed["TrainingJobArn"].rsplit("/", 1)[1])
        job.training_job_status, job.failure_reason = "Failed", reason

    aws.events.register("after-call.sagemaker.CreateTrainingJob", fail)
    with pytest.raises(CloudError, match=re.escape(f"ended Failed: {reason}")):
        sm_mod.train(uri, role=ROLE, session=aws)


def test_wait_stops_a_job_that_outlives_its_timeout(aws, finished_job, calls, moto_job):
    moto_job(finished_job).training_job_status = "InProgress"
    with pytest.raises(CloudError, match="still InProgress after 0 s; could not stop it"):
        sm_mod.wait_for_training_job(finished_job, timeout=0, poll=0.01, session=aws)
    stop = [c for c in calls if c.operation == "StopTrainingJob"]
    assert [(c.params, c.status) for c in stop] == [({"TrainingJobName": finished_job}, 500)]


@pytest.mark.parametrize("slow_api", [0.0, 0.4], ids=["quiet", "loaded"])
def test_delete_waits_for_a_job_it_cannot_stop(
    aws, bucket, finished_job, calls, moto_job, slow_api
):
    """The job ends after the third DescribeTrainingJob, whatever the clock says.

    Issue 14 item 16: the job used to end 0.3 s after the test started (a timer); on a
    loaded machine delete() had not described it by then, found it Completed at once,
    never tried to stop it and polled once: the test failed.  ``loaded`` makes every
    SageMaker call 0.4 s slower, as a busy machine does.
    """
    output = f"output/{finished_job}/output/model.tar.gz"
    aws.client("s3").put_object(Bucket=bucket, Key=output, Body=b"model")
    record = moto_job(finished_job)
    record.training_job_status = "InProgress"
    described = []

    def end_after_three(**_: object) -> None:
        described.append(1)
        if len(described) == 3:
            record.training_job_status = "Completed"

    def slow(**_: object) -> None:
        time.sleep(slow_api)

    aws.events.register("before-call.sagemaker.DescribeTrainingJob", end_after_three)
    aws.events.register("before-call.sagemaker.*", slow)
    job = sm_mod.TrainingJob(finished_job, "image", f"s3://{bucket}/{output}", "InProgress", {})
    gone = sm_mod.delete(job, session=aws, poll=0.05)
    stop = [c for c in calls if c.operation == "StopTrainingJob"]
    assert [c.status for c in stop] == [500]
    assert _ops(calls).count("DescribeTrainingJob") >= 3  # polled until the job ended
    assert gone == [f"s3://{bucket}/{output}"] and _objects(aws) == {}


def test_train_refuses_a_missing_bucket_the_sdk_would_create(aws, calls):
    with pytest.raises(CloudError, match="bucket 'no-such-bucket' does not exist"):
        sm_mod.train("s3://no-such-bucket/train/", role=ROLE, session=aws)
    assert aws.client("s3").list_buckets()["Buckets"] == []
    assert "CreateTrainingJob" not in _ops(calls) and "CreateBucket" not in _ops(calls)


def test_train_and_tune_refuse_a_hyperparameter_the_script_lacks(aws, calls):
    with pytest.raises(ValueError, match=r"no hyper-parameter \['learning_rate'\]; it takes"):
        sm_mod.train(
            f"s3://{BUCKET}/x/", role=ROLE, hyperparameters={"learning_rate": 0.1}, session=aws
        )
    with pytest.raises(ValueError, match=r"no hyper-parameter \['learning_rate'\] to search"):
        sm_mod.tune(
            f"s3://{BUCKET}/x/", role=ROLE, ranges={"learning_rate": (0.01, 0.1)}, session=aws
        )
    assert calls == []


def test_train_without_a_role_says_how_to_give_one(aws, bucket, train_frame):
    with pytest.raises(ValueError, match="MLPERF_SAGEMAKER_ROLE"):
        sm_mod.train(f"s3://{bucket}/x/", session=aws)


# ------------------------------------------------------------------ tuning


def test_tune_creates_the_tuning_job_the_tutorial_meant(aws, bucket, train_frame):
    uri = sm_mod.upload_data(train_frame, bucket, session=aws)
    job = sm_mod.tune(uri, role=ROLE, session=aws)
    desc = aws.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=job.name
    )
    config, definition = desc["HyperParameterTuningJobConfig"], desc["TrainingJobDefinition"]
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "accuracy",
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2}
    ranges = {
        r["Name"]: (r["MinValue"], r["MaxValue"])
        for r in config["ParameterRanges"]["IntegerParameterRanges"]
    }
    assert ranges == {"n_estimators": ("50", "200"), "max_depth": ("5", "15")}
    assert definition["AlgorithmSpecification"]["TrainingImage"] == sm_mod.image_uri(REGION)
    assert definition["StaticHyperParameters"]["sagemaker_program"] == "train_sklearn.py"
    tarball = definition["StaticHyperParameters"]["sagemaker_submit_directory"]
    with tarfile.open(fileobj=io.BytesIO(_objects(aws)[tarball.split(f"{BUCKET}/", 1)[1]])) as tar:
        member = tar.extractfile("train_sklearn.py")
        assert member is not None and member.read() == training_script().read_bytes()
    assert {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]
        for c in definition["InputDataConfig"]
    }["train"] == uri
    # the tutorial's tuner had no metric definition: the objective could never be read.
    # Here the regex SageMaker stored must find the value in the script's real output.
    (metric,) = definition["AlgorithmSpecification"]["MetricDefinitions"]
    local = run_local(None, train_frame, {"n_estimators": 50, "max_depth": 5})
    found = re.findall(metric["Regex"], local.stdout)
    assert metric["Name"] == "accuracy" and [float(v) for v in found] == [local.metrics["accuracy"]]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"n_estimators": (200, 50)}, r"low > high; got \(200, 50\)"),
        ({"n_estimators": (50,)}, r"must be a \(low, high\) pair"),
        ({"max_depth": "5..15"}, r"got '5\.\.15'"),
        ({"max_depth": (5, float("nan"))}, "finite numbers"),
        ({"max_depth": (True, 15)}, "finite numbers"),
        ({}, "non-empty mapping"),
        ({"max depth": (5, 15)}, "identifier"),
    ],
)
def test_tune_refuses_a_malformed_range_before_any_request(aws, calls, ranges, message):
    with pytest.raises(ValueError, match=message):
        sm_mod.tune(f"s3://{BUCKET}/x/", role=ROLE, ranges=ranges, session=aws)
    assert calls == []


def test_tune_refuses_more_parallel_jobs_than_jobs(aws, calls):
    with pytest.raises(ValueError, match="max_parallel_jobs <= max_jobs; got 3 and 2"):
        sm_mod.tune(f"s3://{BUCKET}/x/", role=ROLE, max_jobs=2, max_parallel_jobs=3, session=aws)
    assert calls == []


def test_best_training_job_falls_back_where_listing_is_missing(aws, bucket, calls):
    # made by one plain call: the SDK's tune() is tested in test_tune_creates_the_tuning_job...
    sm = aws.client("sagemaker")
    sm.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="mlperf-tune-x",
        HyperParameterTuningJobConfig={
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "accuracy"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
        },
        TrainingJobDefinition={
            "AlgorithmSpecification": {
                "TrainingImage": sm_mod.image_uri(REGION),
                "TrainingInputMode": "File",
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
    )
    job = sm_mod.TuningJob("mlperf-tune-x", "Completed", "accuracy", {})
    calls.clear()
    best = sm_mod.best_training_job(job, session=aws)
    described = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job.name)
    assert best == described["BestTrainingJob"]["TrainingJobName"]
    listing = [c for c in calls if c.operation == "ListTrainingJobsForHyperParameterTuningJob"]
    assert [(c.params["HyperParameterTuningJobName"], c.status) for c in listing] == [
        (job.name, 500)
    ]
    sm_mod.delete(job, session=aws)
    _assert_nothing_left(aws)


class _StubbedSession:
    """Hands out one stubbed client: the only way to answer
    ListTrainingJobsForHyperParameterTuningJob."""

    def __init__(self, client: Any) -> None:
        self.client_ = client

    def client(self, name: str, **_: Any) -> Any:
        assert name == "sagemaker"
        return self.client_


def _summary(name: str, value: float | None, status: str = "Completed") -> dict[str, Any]:
    out: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:1:training-job/{name}",
        "CreationTime": pd.Timestamp("2026-01-01"),
        "TrainingJobStatus": status,
        "TunedHyperParameters": {"n_estimators": "100", "max_depth": "7"},
    }
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "MetricName": "accuracy",
            "Value": value,
        }
    return out


def test_best_training_job_reads_the_listing_when_it_exists(aws):
    from botocore.stub import Stubber

    client = aws.client("sagemaker")
    describe = {
        "HyperParameterTuningJobName": "t",
        "HyperParameterTuningJobArn": "arn:x",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxParallelTrainingJobs": 2},
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "accuracy"},
        },
        "HyperParameterTuningJobStatus": "Completed",
        "CreationTime": pd.Timestamp("2026-01-01"),
        "TrainingJobStatusCounters": {},
        "ObjectiveStatusCounters": {},
    }
    with Stubber(client) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", describe)
        # the service's sort is trusted only as far as it goes: a failed job has no value
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {
                "TrainingJobSummaries": [
                    _summary("j-failed", None, "Failed"),
                    _summary("j-2", 0.91),
                    _summary("j-1", 0.87),
                ]
            },
        )
        assert sm_mod.best_training_job("t", session=_StubbedSession(client)) == "j-2"
        stub.assert_no_pending_responses()


# ------------------------------------------------------------------ serving


def _local_predictions(frame: pd.DataFrame, rows: pd.DataFrame, tmp_path: Any) -> np.ndarray:
    import joblib

    result = run_local(None, frame, {"n_estimators": 50, "max_depth": 5}, workdir=tmp_path / "run")
    return joblib.load(result.model_path).predict(rows.to_numpy())


def test_deploy_predict_delete(
    make_frame, aws, finished_job, calls, queue_predictions, train_frame, tmp_path
):
    # a job made by one CreateTrainingJob call; train -> deploy runs in test_offline_flow_sagemaker
    sm = aws.client("sagemaker")
    described = sm.describe_training_job(TrainingJobName=finished_job)
    dep = sm_mod.deploy(finished_job, role=ROLE, session=aws)
    assert sm.describe_endpoint(EndpointName=dep.endpoint_name)["EndpointStatus"] == "InService"
    container = sm.describe_model(ModelName=dep.model_name)["PrimaryContainer"]
    assert container["Image"] == described["AlgorithmSpecification"]["TrainingImage"]
    assert container["ModelDataUrl"] == described["ModelArtifacts"]["S3ModelArtifacts"]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train_sklearn.py"
    code = _objects(aws)[
        container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"].split(f"{BUCKET}/", 1)[1]
    ]
    with tarfile.open(fileobj=io.BytesIO(code)) as tar:
        assert tar.getnames() == ["train_sklearn.py"]
    (variant,) = sm.describe_endpoint_config(EndpointConfigName=dep.endpoint_config_name)[
        "ProductionVariants"
    ]
    assert (variant["ModelName"], variant["InstanceType"]) == (dep.model_name, "ml.m5.large")

    rows = make_frame(8, seed=7).drop(columns="target")
    expected = _local_predictions(train_frame, rows, tmp_path)  # what the real container would say
    queue_predictions("".join(f"{v}\n" for v in expected))
    got = sm_mod.predict(dep, rows, session=aws)
    np.testing.assert_array_equal(got, expected)
    (invoke,) = [c for c in calls if c.operation == "InvokeEndpoint"]
    sent = pd.read_csv(io.BytesIO(invoke.params["Body"]), header=None)
    np.testing.assert_array_equal(sent.to_numpy(), rows.to_numpy())
    assert (invoke.params["ContentType"], invoke.params["Accept"]) == ("text/csv", "text/csv")

    sm_mod.delete(dep, session=aws)
    _assert_nothing_left(aws)


def test_predict_counts_the_reply(aws, finished_job, queue_predictions):
    dep = sm_mod.deploy(finished_job, role=ROLE, session=aws)
    queue_predictions("1\n0\n")
    with pytest.raises(CloudError, match="returned 2 predictions for 3 rows"):
        sm_mod.predict(dep, np.zeros((3, 10)), session=aws)
    queue_predictions('{"predictions": [1, 0, 1]}', "application/json")
    np.testing.assert_array_equal(sm_mod.predict(dep, np.ones((3, 10)), session=aws), [1, 0, 1])
    with pytest.raises(ValueError, match="must be numeric"):
        sm_mod.predict(dep, [["a", "b"]], session=aws)


def test_deploy_update_falls_back_to_recreating_the_endpoint(aws, finished_job, calls):
    job = finished_job
    first = sm_mod.deploy(job, role=ROLE, endpoint_name="mlperf-live", session=aws)
    with pytest.raises(CloudError, match="already exists; pass update=True"):
        sm_mod.deploy(job, role=ROLE, endpoint_name="mlperf-live", session=aws)
    calls.clear()
    second = sm_mod.deploy(job, role=ROLE, endpoint_name="mlperf-live", update=True, session=aws)
    ops = _ops(calls)
    update = ops.index("UpdateEndpoint")
    assert calls[update].status == 500
    assert ops[update + 1 : update + 3] == ["DeleteEndpoint", "CreateEndpoint"]
    sm = aws.client("sagemaker")
    live = sm.describe_endpoint(EndpointName="mlperf-live")
    assert live["EndpointConfigName"] == second.endpoint_config_name != first.endpoint_config_name
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == [second.model_name]
    assert [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]] == [
        second.endpoint_config_name
    ]
    sm_mod.delete(second, session=aws)
    _assert_nothing_left(aws)


def test_a_partial_deployment_is_cleaned_up(aws, finished_job):
    job = finished_job
    before = set(_objects(aws))
    with pytest.raises(CloudError, match=r"ml\.bogus.*cleaned up.*model mlperf-sklearn"):
        sm_mod.deploy(job, role=ROLE, instance_type="ml.bogus", session=aws)
    sm = aws.client("sagemaker")
    assert sm.list_models()["Models"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert set(_objects(aws)) == before  # the serving code it uploaded is gone too


def test_an_endpoint_that_fails_is_deleted_with_its_model_and_config(aws, finished_job):
    from moto.sagemaker.models import sagemaker_backends

    reason = "CapacityError: Unable to provision requested ML compute capacity"

    def fail(params: dict[str, Any], **_: Any) -> None:  # moto's endpoints are InService at once
        record = sagemaker_backends["123456789012"][REGION].endpoints.get(params["EndpointName"])
        if record is not None:
            record.endpoint_status, record.failure_reason = "Failed", reason

    aws.events.register("provide-client-params.sagemaker.DescribeEndpoint", fail)
    before = set(_objects(aws))
    with pytest.raises(CloudError, match=rf"is Failed: {reason}.*endpoint mlperf-sklearn"):
        sm_mod.deploy(finished_job, role=ROLE, poll=0.01, session=aws)
    _assert_nothing_left(aws, keep=before)


def test_predict_on_a_missing_endpoint(aws):
    with pytest.raises(CloudError, match="endpoint 'nowhere' does not exist; deploy"):
        sm_mod.predict("nowhere", np.zeros((1, 10)), session=aws)


def test_predict_on_an_unreachable_endpoint(aws, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    import boto3

    with pytest.raises(CloudError, match="cannot reach SageMaker for endpoint 'mlperf-x'"):
        sm_mod.predict("mlperf-x", np.zeros((1, 10)), session=boto3.Session(region_name=REGION))


def test_moto_server_listens_on_loopback_only(
    moto_server: str, assert_loopback_only: Callable[..., None]
) -> None:
    assert_loopback_only(moto_server)

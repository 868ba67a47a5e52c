"""The whole SageMaker flow, once offline against moto (timed) and once on real AWS (``cloud``).

Offline it proves the calls line up end to end and leave nothing behind; the
time is the SDK's and moto's, not training (moto never runs a container).  On
AWS the same code trains, tunes, serves and deletes for real; it spends money.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest

from mlperf.cloud import sagemaker as sm_mod

pytestmark = [pytest.mark.xdist_group("cloud-aws")]

ROLE = "arn:aws:iam::123456789012:role/mlperf-sagemaker"  # as in conftest.py


def _flow(
    session,
    bucket: str,
    prefix: str,
    frame: pd.DataFrame,
    rows: pd.DataFrame,
    role: str,
    *,
    max_jobs: int = 10,
    deploy_best: bool = False,
):
    """upload -> train -> tune -> best job -> deploy -> predict -> delete; returns what it saw."""
    created: list = []
    try:
        uri = sm_mod.upload_data(frame, bucket, prefix, session=session)
        created.append(uri)
        job = sm_mod.train(
            uri, role=role, hyperparameters={"n_estimators": 100, "max_depth": 10}, session=session
        )
        created.append(job)
        tuning = sm_mod.tune(uri, role=role, max_jobs=max_jobs, session=session)
        created.append(tuning)
        best = sm_mod.best_training_job(tuning, session=session)
        # moto's best job is a hard-coded name with no record behind it: serve the trained one
        dep = sm_mod.deploy(best if deploy_best else job, role=role, session=session)
        created.insert(0, dep)
        predictions = sm_mod.predict(dep, rows, session=session)
        return best, predictions
    finally:
        sm_mod.delete(*created, session=session)


def _rows(make_frame) -> tuple[pd.DataFrame, np.ndarray]:
    held_out = make_frame(20, seed=11)
    return held_out.drop(columns="target"), held_out["target"].to_numpy()


@pytest.mark.mlperf(metric="wall")  # the requests are served by moto's thread
def test_offline_flow_sagemaker(benchmark, aws, bucket, queue_predictions, train_frame, make_frame):
    rows, truth = _rows(make_frame)
    sm = aws.client("sagemaker")

    def once():
        queue_predictions("".join(f"{v}\n" for v in truth))  # what a perfect model would say
        return _flow(aws, bucket, f"flow-{uuid.uuid4().hex[:8]}", train_frame, rows, ROLE)

    best, predictions = benchmark.pedantic(once, rounds=3, iterations=1)
    assert isinstance(best, str) and best  # moto's stub; its fallback path is tested on its own
    np.testing.assert_array_equal(predictions, truth)
    assert sm.list_endpoints()["Endpoints"] == [] and sm.list_models()["Models"] == []
    assert aws.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount") == 0


@pytest.mark.mlperf_cloud
def test_sagemaker_flow_on_aws(make_frame):
    role, bucket = os.environ.get("MLPERF_SAGEMAKER_ROLE"), os.environ.get("MLPERF_S3_BUCKET")
    if not (role and bucket):
        pytest.skip(
            "real SageMaker: set MLPERF_SAGEMAKER_ROLE (execution role ARN) and "
            "MLPERF_S3_BUCKET (an existing bucket), with AWS credentials in the environment"
        )
    import boto3

    rows, truth = _rows(make_frame)
    # two tuning jobs, not ten: the flow is what is under test, not the search
    best, predictions = _flow(
        boto3.Session(),
        bucket,
        f"mlperf-ci/{uuid.uuid4().hex[:8]}",
        make_frame(2000),
        rows,
        role,
        max_jobs=2,
        deploy_best=True,
    )
    assert best
    assert predictions.shape == truth.shape and set(np.unique(predictions)) <= {0, 1}
    assert (predictions == truth).mean() > 0.7  # a real forest on a linear rule

"""Vertex AI flow, offline: Cloud Storage emulator + a fake Vertex REST API that records the SDK.

What this proves: the real ``google-cloud-aiplatform`` SDK, driven by
:mod:`mlperf.cloud.vertex`, sends the requests the tutorial meant (dataset source,
objective, split, budget, machine spec, predict payload, undeploy before delete),
the CSV really lands in the bucket, and failures come back as clear errors.  What it
cannot prove: that AutoML trains a good model, or that the service accepts a given
machine type and accelerator in a region -- the fake trains nothing and checks no quota.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from mlperf._optional import available, install_hint
from mlperf.cloud.common import CloudError
from mlperf.cloud.vertex import connect, create_dataset, delete, deploy, predict, train, upload_data

pytestmark = [
    pytest.mark.xdist_group("cloud-gcp"),
    pytest.mark.skipif(
        not (available("google.cloud.aiplatform") and available("gcp_storage_emulator")),
        reason=f"GCP tests need the Vertex SDK and the storage emulator: {install_hint('google')}",
    ),
]
BUCKET = "mlperf-test"  # the `bucket` fixture's name
FEATURES = [f"feature_{i}" for i in range(10)]


def read_back(session, uri: str) -> pd.DataFrame:
    bucket, name = uri.removeprefix("gs://").split("/", 1)
    text = session.storage_client().bucket(bucket).blob(name).download_as_text()
    return pd.read_csv(io.StringIO(text))


def accelerator_name(value) -> str:
    """The REST transport sends enums as integers; map back to the name."""
    from google.cloud.aiplatform_v1.types import AcceleratorType

    return AcceleratorType(value).name if isinstance(value, int) else str(value)


def run_flow(session, frame: pd.DataFrame, rows: pd.DataFrame):
    """The tutorial's flow, in mlperf's verbs."""
    uri = upload_data(frame, BUCKET, "flow", session=session)
    dataset = create_dataset(uri, "seed-data", session=session)
    model = train(dataset, "target", budget_milli_node_hours=1000, session=session)
    endpoint = deploy(
        model,
        machine_type="n1-standard-4",
        accelerator_type="NVIDIA_TESLA_T4",
        accelerator_count=1,
        session=session,
    )
    predictions = predict(endpoint, rows, session=session)
    gone = delete(endpoint, model=model, dataset=dataset, session=session)
    return uri, predictions, gone


# ------------------------------------------------------------------ data


def test_upload_data_puts_the_exact_frame_in_the_bucket(gcp, bucket, train_frame):
    uri = upload_data(train_frame, bucket, "mlperf/train", session=gcp)
    assert uri == f"gs://{bucket}/mlperf/train/train.csv"
    # float64 text written by pandas round-trips exactly
    pd.testing.assert_frame_equal(read_back(gcp, uri), train_frame, check_exact=True)


def test_upload_data_accepts_a_csv_path(gcp, bucket, train_frame, tmp_path):
    path = tmp_path / "train.csv"
    train_frame.to_csv(path, index=False)
    uri = upload_data(path, bucket, session=gcp)
    pd.testing.assert_frame_equal(read_back(gcp, uri), train_frame, check_exact=True)


def test_upload_data_refuses_a_missing_bucket(gcp, train_frame):
    with pytest.raises(CloudError, match=r"bucket 'absent' does not exist.*gcloud storage buckets"):
        upload_data(train_frame, "absent", session=gcp)


def test_upload_data_refuses_an_empty_frame_before_uploading(gcp, bucket, train_frame):
    with pytest.raises(ValueError, match="empty"):
        upload_data(train_frame.iloc[:0], bucket, session=gcp)
    assert list(gcp.storage_client().list_blobs(bucket)) == []


def test_upload_data_refuses_a_uri_where_a_bucket_name_goes(gcp, train_frame):
    with pytest.raises(ValueError, match=r"bare bucket name; got 'gs://b/x'; pass 'b'"):
        upload_data(train_frame, "gs://b/x", session=gcp)


# ------------------------------------------------------------------ the whole flow


def test_the_flow_sends_what_the_tutorial_meant(
    gcp, vertex, bucket, train_frame, make_frame, rule_predictor
):
    vertex.predictor = rule_predictor
    rows = make_frame(25, seed=7)[FEATURES]
    uri, predictions, gone = run_flow(gcp, train_frame, rows)

    # the CSV is really in the emulator's bucket, byte for byte the frame
    pd.testing.assert_frame_equal(read_back(gcp, uri), train_frame, check_exact=True)

    (ds,) = vertex.calls("POST", "datasets")
    assert ds.body["metadata"]["inputConfig"]["gcsSource"]["uri"] == [uri]

    (tp,) = vertex.calls("POST", "trainingPipelines")
    assert tp.body["inputDataConfig"]["fractionSplit"] == {
        "trainingFraction": 0.8,
        "validationFraction": 0.1,
        "testFraction": 0.1,
    }
    assert tp.body["inputDataConfig"]["datasetId"] == ds_id(vertex)
    task = tp.body["trainingTaskInputs"]
    assert task["predictionType"] == "classification"
    assert task["optimizationObjective"] == "maximize-au-prc"
    assert task["targetColumn"] == "target"
    assert int(task["trainBudgetMilliNodeHours"]) == 1000
    # the SDK read the header from the emulator to build these: proof the object is readable
    assert sorted(t["auto"]["column_name"] for t in task["transformations"]) == FEATURES

    (dm,) = vertex.calls("POST", "endpoints", verb="deployModel")
    spec = dm.body["deployedModel"]["dedicatedResources"]
    assert spec["machineSpec"]["machineType"] == "n1-standard-4"
    assert accelerator_name(spec["machineSpec"]["acceleratorType"]) == "NVIDIA_TESLA_T4"
    assert spec["machineSpec"]["acceleratorCount"] == 1
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 1)

    (pr,) = vertex.calls("POST", "endpoints", verb="predict")
    sent = pd.DataFrame(pr.body["instances"])[FEATURES].astype(float)
    pd.testing.assert_frame_equal(sent, rows, check_exact=True)  # repr() round-trips floats
    expected = np.where(rows.sum(axis=1) > 0, "1", "0")
    assert predictions.index.equals(rows.index)
    assert (predictions["label"].to_numpy() == expected).all()
    assert predictions["score"].between(0.5, 1).all()

    # undeploy first (Vertex refuses otherwise), then delete; nothing is left
    order = [(r.method, r.verb) for r in vertex.calls() if r.method != "GET"]
    assert order.index(("POST", "undeployModel")) < order.index(("DELETE", ""))
    assert vertex.live("endpoints") == vertex.live("models") == vertex.live("datasets") == []
    assert len(gone) == 3


def ds_id(vertex) -> str:
    (name,) = [n for n in vertex.resources if "/datasets/" in n]
    return name.rsplit("/", 1)[-1]


@pytest.mark.mlperf(metric="wall")
def test_offline_flow_time(benchmark, gcp, vertex, bucket, train_frame, rule_predictor):
    """Wall time of the whole offline flow (emulator + fake + SDK), the cost of a dry run."""
    rows = train_frame[FEATURES].iloc[:100]

    def reset():
        vertex.reset()
        vertex.predictor = rule_predictor
        return (gcp, train_frame, rows), {}

    _, predictions, gone = benchmark.pedantic(run_flow, setup=reset, rounds=5, warmup_rounds=1)
    assert (predictions["label"] == train_frame["target"].iloc[:100].astype(str)).all()
    assert len(gone) == 3 and vertex.live("endpoints") == []


# ------------------------------------------------------------------ the tutorial's bugs


def test_the_tutorials_bare_array_is_refused_before_any_request(gcp, vertex):
    with pytest.raises(TypeError, match="need named columns; got ndarray"):
        predict("projects/p/locations/l/endpoints/1", np.zeros((100, 10)), session=gcp)
    assert vertex.requests == []


def test_the_tutorials_delete_without_undeploy_fails_and_delete_does_not(
    gcp, vertex, bucket, train_frame
):
    exceptions = pytest.importorskip("google.api_core.exceptions")
    uri = upload_data(train_frame, bucket, session=gcp)
    model = train(create_dataset(uri, session=gcp), session=gcp)
    endpoint = deploy(model, session=gcp)
    # Vertex answers HTTP 400 / FAILED_PRECONDITION, which api-core raises as BadRequest
    with pytest.raises(exceptions.BadRequest, match="still has deployed models"):
        endpoint.delete()  # the tutorial's last line
    assert delete(endpoint, session=gcp) == [endpoint.resource_name]
    assert vertex.live("endpoints") == []


# ------------------------------------------------------------------ bad input, failures


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fractions": (0.8, 0.1, 0.2)}, ValueError, r"summing to 1; got \(0.8, 0.1, 0.2\)"),
        ({"fractions": (0.8, 0.2)}, ValueError, "fractions must be"),
        ({"objective": "maximize-accuracy"}, ValueError, "'maximize-accuracy' is not valid"),
        ({"objective": "minimize-rmse"}, ValueError, "not valid for classification"),
        ({"budget_milli_node_hours": 10}, ValueError, r"\[1000, 72000\].*got 10"),
        ({"budget_milli_node_hours": 1.5}, TypeError, "must be an int; got 1.5"),
        ({"target": "label"}, ValueError, "label column 'label' is not in the dataset"),
        ({"column_specs": {"nope": "auto"}}, ValueError, r"not in the dataset: \['nope'\]"),
    ],
)
def test_train_refuses_bad_settings_before_any_pipeline(
    gcp, vertex, bucket, train_frame, kwargs, error, message
):
    dataset = create_dataset(upload_data(train_frame, bucket, session=gcp), session=gcp)
    with pytest.raises(error, match=message):
        train(dataset, **{"target": "target", **kwargs}, session=gcp)
    assert vertex.calls("POST", "trainingPipelines") == []


def test_a_failed_training_pipeline_surfaces_its_reason(gcp, vertex, bucket, train_frame):
    vertex.fail_training = "Target column 'target' has only one distinct value"
    dataset = create_dataset(upload_data(train_frame, bucket, session=gcp), session=gcp)
    with pytest.raises(CloudError, match=r"failed: Target column 'target' has only one distinct"):
        train(dataset, session=gcp)


def test_a_partial_deployment_is_cleaned_up(gcp, vertex, bucket, train_frame):
    model = train(
        create_dataset(upload_data(train_frame, bucket, session=gcp), session=gcp), session=gcp
    )
    vertex.fail_deploy = "Quota exceeded for NVIDIA_TESLA_T4 in us-central1"
    with pytest.raises(CloudError, match=r"Quota exceeded.*endpoint '.*' was deleted"):
        deploy(model, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1, session=gcp)
    assert len(vertex.calls("POST", "endpoints", verb="")) == 1  # it was created...
    assert vertex.live("endpoints") == []  # ...and is gone


@pytest.mark.parametrize(
    "kwargs",
    [{"accelerator_type": "NVIDIA_TESLA_T4"}, {"accelerator_count": 2}, {"min_replica_count": 0}],
)
def test_deploy_refuses_an_incomplete_machine_spec(gcp, vertex, kwargs):
    with pytest.raises(ValueError, match="deploy: "):
        deploy(object(), **kwargs, session=gcp)
    assert vertex.requests == []


def test_predict_on_an_unreachable_endpoint(gcp, dead_url, make_frame):
    dead = connect("p", credentials=gcp.credentials, api_endpoint=dead_url)
    with pytest.raises(
        CloudError, match=r"predict: Vertex AI at 'http://127.0.0.1:\d+' is unreachable"
    ):
        predict("projects/p/locations/us-central1/endpoints/1", make_frame(3), session=dead)


def test_predict_on_a_deleted_endpoint_is_a_clear_error(gcp, fake_model, make_frame):
    endpoint = deploy(fake_model(), session=gcp)
    delete(endpoint, session=gcp)
    with pytest.raises(CloudError, match="predict: Vertex AI refused the request: 404"):
        predict(endpoint, make_frame(3)[FEATURES], session=gcp)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frame=data_frames(
        [column(f"feature_{i}", dtype=float, elements=st.floats(-1e6, 1e6)) for i in range(3)],
        index=range_indexes(min_size=1, max_size=40),
    ),
    batch_size=st.integers(1, 16),
)
def test_predict_keeps_row_order_and_exact_values_across_batches(
    gcp, vertex, fake_model, rule_predictor, frame, batch_size
):
    """Whatever the batching, row i's prediction belongs to row i and values arrive exact."""
    vertex.reset()
    vertex.predictor = rule_predictor
    endpoint = deploy(fake_model(), session=gcp)
    frame.index = frame.index * 3 + 5  # a non-default index must be kept
    out = predict(endpoint, frame, batch_size=batch_size, session=gcp)
    sent = [inst for r in vertex.calls("POST", verb="predict") for inst in r.body["instances"]]
    assert len(vertex.calls("POST", verb="predict")) == -(-len(frame) // batch_size)
    # JSON objects are unordered (protobuf Struct): compare by column name
    sent_frame = pd.DataFrame(sent)[list(frame.columns)].astype(float)
    pd.testing.assert_frame_equal(sent_frame, frame.reset_index(drop=True), check_exact=True)
    assert out.index.equals(frame.index)
    assert (out["label"].to_numpy() == np.where(frame.sum(axis=1) > 0, "1", "0")).all()


# ------------------------------------------------------------------ the real service


@pytest.mark.mlperf_cloud
def test_real_vertex_flow(train_frame):
    """The same flow on Google Cloud: MLPERF_GCP_PROJECT, MLPERF_GCS_BUCKET and ADC credentials.

    Costs about one AutoML node hour plus a few minutes of an n1-standard-4 endpoint.
    """
    project, bucket_name = os.environ.get("MLPERF_GCP_PROJECT"), os.environ.get("MLPERF_GCS_BUCKET")
    if not (project and bucket_name):
        pytest.skip(
            "set MLPERF_GCP_PROJECT and MLPERF_GCS_BUCKET (an existing bucket) and run "
            "`gcloud auth application-default login`, then pytest --mlperf-cloud "
            "suites/cloud/vertex"
        )
    session = connect(project, os.environ.get("MLPERF_GCP_LOCATION", "us-central1"))
    uri = upload_data(train_frame, bucket_name, "mlperf-ci", session=session)
    dataset = create_dataset(uri, session=session)
    model = endpoint = None
    try:
        model = train(dataset, session=session)
        endpoint = deploy(model, session=session)  # AutoML tabular serves on CPU
        out = predict(endpoint, train_frame[FEATURES].iloc[:20], session=session)
        assert len(out) == 20 and set(out["label"]) <= {"0", "1"}
    finally:
        if endpoint is not None:
            delete(endpoint, model=model, dataset=dataset, session=session)
        else:
            for resource in (model, dataset):
                if resource is not None:
                    resource.delete()


def test_servers_listen_on_loopback_only(
    gcs_emulator: Any, vertex_server: Any, assert_loopback_only: Callable[..., None]
) -> None:
    """The GCS emulator and the Vertex fake (issue 14 item 1)."""
    assert_loopback_only(gcs_emulator.url, vertex_server.url)

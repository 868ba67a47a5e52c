"""Azure ML flow, offline: Azurite for Blob Storage, the control plane intercepted at ``MLClient``.

What this proves: the CSV really lands in (and reads back from) Blob Storage; the
job, sweep, model, endpoint and deployment entities that azure-ai-ml would send
carry the right command, code, conda spec, inputs, search space, limits,
objective, model path, auth mode and instance settings; the job's command line
really trains when run locally; the deployed scoring script really answers the
SDK's own ``invoke`` over HTTP with the model's predictions; failures are clear.
What it cannot prove: that Azure accepts the entities (quota, compute names,
image pulls, conda solves) -- no Azure ML control-plane emulator exists.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from mlperf._optional import available, install_hint
from mlperf.cloud import training_script
from mlperf.cloud.azure import (
    BASE_IMAGE,
    best_trial,
    connect,
    delete,
    deploy,
    predict,
    register_model,
    train,
    tune,
    upload_data,
)
from mlperf.cloud.common import CloudError

pytestmark = [
    pytest.mark.xdist_group("cloud-azure"),
    pytest.mark.skipif(
        not (available("azure.ai.ml") and available("azure.storage.blob")),
        reason=f"Azure tests need azure-ai-ml and azure-storage-blob: {install_hint('azure')}",
    ),
    pytest.mark.skipif(
        not available("sklearn"),
        reason=f"the training script needs scikit-learn: {install_hint('sklearn')}",
    ),
    # azure-ai-ml's schemas trip marshmallow's own deprecation warnings on import
    pytest.mark.filterwarnings("ignore::DeprecationWarning:(marshmallow|azure)"),
]
FEATURES = [f"feature_{i}" for i in range(10)]
ACCOUNT_KEY_PREFIX = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1"


def load_model(path):
    import joblib  # scikit-learn's, checked above

    return joblib.load(path)


def read_blob(blob_service, container: str, name: str) -> pd.DataFrame:
    data = blob_service.get_blob_client(container, name).download_blob().readall()
    return pd.read_csv(io.BytesIO(data))


def serve(azure_ml, scoring_server, job_run, tmp_path, monkeypatch) -> None:
    """Point invoke() at a scoring server running the deployment's code with the local model."""
    (deployment,) = azure_ml.of("online_deployments.begin_create_or_update")
    entry = deployment.spec["code_configuration"]["scoring_script"]
    scoring_server.load(deployment.code, entry, job_run.model_dir, tmp_path, monkeypatch)
    azure_ml.scoring_uri = scoring_server.start()


# ------------------------------------------------------------------ data


def test_upload_data_puts_the_exact_frame_in_blob_storage(
    azure_ml, blob_service, container, train_frame
):
    asset = upload_data(
        train_frame,
        container,
        "seed/train.csv",
        blob_service=blob_service,
        ml_client=azure_ml.client,
    )
    pd.testing.assert_frame_equal(
        read_blob(blob_service, container, "seed/train.csv"), train_frame, check_exact=True
    )
    (registered,) = azure_ml.of("data.create_or_update")
    assert registered.spec["type"] == "uri_file"
    assert registered.spec["path"] == f"{blob_service.url}{container}/seed/train.csv"
    assert (asset.name, asset.version) == ("mlperf-train", "1")


def test_upload_data_through_a_connection_string_and_a_datastore(azurite, container, train_frame):
    asset = upload_data(
        train_frame, container, connection_string=azurite, datastore="workspaceblobstore"
    )
    assert asset._to_dict()["path"] == (
        "azureml://datastores/workspaceblobstore/paths/mlperf/train/train.csv"
    )
    assert asset.version is None  # no ml_client: described, not registered


def test_upload_data_refuses_a_missing_container_without_leaking_the_key(azurite, train_frame):
    with pytest.raises(
        CloudError, match=r"container 'absent' does not exist.*az storage container"
    ) as err:
        upload_data(train_frame, "absent", connection_string=azurite)
    assert ACCOUNT_KEY_PREFIX not in str(err.value)


@pytest.mark.parametrize("silent", [False, True], ids=["refused", "silent"])
def test_upload_data_to_a_dead_endpoint_names_it(train_frame, monkeypatch, silent):
    """Issue 14 item 15: a storage endpoint that refuses connections took 85 s of the
    SDK's retries (15 s backoff and up); one that accepts and never answers raised the
    SDK's raw ServiceResponseError after minutes.  The first call now tries once, within
    MLPERF_CONNECT_TIMEOUT, and the error names the account's URL."""
    import base64
    import socket

    key = base64.b64encode(b"not-a-real-account-key-" * 3).decode()
    monkeypatch.setenv("MLPERF_CONNECT_TIMEOUT", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        if silent:
            sock.listen()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/acct"
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={key};BlobEndpoint={url};"
        )
        if not silent:
            sock.close()
        with pytest.raises(CloudError) as err:
            upload_data(train_frame, "c", connection_string=connection)
    assert url in str(err.value) and key[:20] not in str(err.value)


def test_upload_data_refuses_an_empty_frame_before_uploading(blob_service, container, train_frame):
    with pytest.raises(ValueError, match="empty"):
        upload_data(train_frame.iloc[:0], container, blob_service=blob_service)
    assert list(blob_service.get_container_client(container).list_blobs()) == []


# ------------------------------------------------------------------ training


def test_train_submits_the_command_job_the_tutorial_meant(azure_ml, train_frame):
    """The tutorial built a dataset and never passed it to the job; here the data is an input."""
    job = train("azureml:mlperf-train:1", ml_client=azure_ml.client)
    assert job.status == "Completed"
    (call,) = azure_ml.of("jobs.create_or_update")
    spec = call.spec
    assert spec["component"]["command"] == (
        "python train_sklearn.py --data ${{inputs.data}} --n_estimators ${{inputs.n_estimators}} "
        "--max_depth ${{inputs.max_depth}} --model_dir ${{outputs.model}}"
    )
    # the code directory holds exactly the shipped script
    assert call.code == {"train_sklearn.py": training_script().read_bytes()}
    assert spec["inputs"] == {
        "data": {"type": "uri_file", "path": "azureml:mlperf-train:1"},
        "n_estimators": 100,
        "max_depth": 10,
    }
    assert spec["outputs"] == {"model": {"type": "uri_folder"}}
    assert spec["compute"] == "azureml:cpu-cluster"
    env = spec["environment"]
    assert env["image"] == BASE_IMAGE
    pip = env["conda_file"]["dependencies"][-1]["pip"]
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in pip
    assert (
        f"python={sys.version_info.major}.{sys.version_info.minor}"
        in env["conda_file"]["dependencies"]
    )
    assert "azureml-mlflow" in " ".join(pip)  # where the sweep reads `accuracy` from
    assert [c.operation for c in azure_ml.calls] == ["jobs.create_or_update", "jobs.stream"]


def test_the_jobs_command_line_really_trains(job_run):
    """The submitted command, placeholders filled in as Azure would, trains and saves the model."""
    assert job_run.returncode == 0, job_run.stderr
    assert job_run.argv[1] == "train_sklearn.py"
    assert re.search(r"accuracy=0\.\d+;", job_run.stdout)
    model = load_model(job_run.model_path)
    assert (model.n_estimators, model.max_depth) == (50, 5)


def test_a_failed_job_surfaces_its_error(azure_ml):
    azure_ml.fail_job = "UserError: train_sklearn: label column 'target' not in the data"
    with pytest.raises(
        CloudError, match=r"train: job 'mlperf_job_1' failed: .*label column 'target'"
    ):
        train("azureml:mlperf-train:1", ml_client=azure_ml.client)


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        ({"n_estimators": 0}, "n_estimators must be an int >= 1; got 0"),
        ({"n_estimators": 10.5}, "got 10.5"),
        ({"max-depth": 3}, "must be an identifier; got 'max-depth'"),
        ({"max_depth": [3]}, r"must be a number or string; got \[3\]"),
        ({"learning_rate": 0.1}, r"no option for \['learning_rate'\] and would ignore it"),
    ],
)
def test_train_refuses_malformed_hyperparameters_before_submitting(
    azure_ml, hyperparameters, message
):
    with pytest.raises((ValueError, TypeError), match=message):
        train("azureml:mlperf-train:1", hyperparameters=hyperparameters, ml_client=azure_ml.client)
    assert azure_ml.calls == []


def test_tune_submits_the_sweep_the_tutorial_meant(azure_ml):
    sweep = tune("azureml:mlperf-train:1", ml_client=azure_ml.client)
    (call,) = azure_ml.of("jobs.create_or_update")
    spec = call.spec
    assert spec["type"] == "sweep"
    assert spec["search_space"] == {
        "n_estimators": {"type": "choice", "values": list(range(50, 201))},
        "max_depth": {"type": "choice", "values": list(range(5, 16))},
    }
    assert spec["objective"] == {"goal": "maximize", "primary_metric": "accuracy"}
    assert spec["limits"]["max_total_trials"] == 10
    assert spec["limits"]["max_concurrent_trials"] == 2
    assert spec["sampling_algorithm"] == "random"
    assert spec["trial"]["command"].startswith("python train_sklearn.py --data ${{inputs.data}}")
    assert call.code == {"train_sklearn.py": training_script().read_bytes()}
    assert spec["inputs"]["data"]["path"] == "azureml:mlperf-train:1"
    assert best_trial(sweep, ml_client=azure_ml.client) == f"{sweep.name}_3"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ranges": {"n_estimators": (200, 50)}}, r"low > high; got \(200, 50\)"),
        ({"ranges": {"n_estimators": (50,)}}, r"\(low, high\) pair"),
        ({"ranges": {"n_estimators": ("a", "b")}}, "finite numbers"),
        ({"ranges": {}}, "non-empty mapping"),
        (
            {"max_concurrent_trials": 3, "max_total_trials": 2},
            "max_concurrent_trials <= max_total_trials",
        ),
        ({"goal": "max"}, "goal must be 'maximize' or 'minimize'; got 'max'"),
        ({"ranges": {"n_estimators": (1, 20_000)}}, "spans 20000 values; at most 10000"),
        ({"ranges": {"max_features": (0.1, 1.0)}}, r"no option for \['max_features'\]"),
    ],
)
def test_tune_refuses_a_malformed_search_before_submitting(azure_ml, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tune("azureml:mlperf-train:1", **kwargs, ml_client=azure_ml.client)
    assert azure_ml.calls == []


def test_tune_searches_a_float_range_uniformly(azure_ml):
    ranges = {"test_size": (0.1, 0.3), "max_depth": (5, 6)}
    tune("azureml:d:1", ranges=ranges, ml_client=azure_ml.client)
    (call,) = azure_ml.of("jobs.create_or_update")
    assert call.spec["search_space"] == {
        "test_size": {"type": "uniform", "min_value": 0.1, "max_value": 0.3},
        "max_depth": {"type": "choice", "values": [5, 6]},
    }
    assert "--test_size ${{inputs.test_size}}" in call.spec["trial"]["command"]


def test_register_model_points_at_the_jobs_model_output(azure_ml):
    job = train("azureml:mlperf-train:1", ml_client=azure_ml.client)
    model = register_model(job, ml_client=azure_ml.client)
    (call,) = azure_ml.of("models.create_or_update")
    assert call.spec["path"] == f"azureml://jobs/{job.name}/outputs/model"
    assert call.spec["type"] == "custom_model"
    assert (model.name, model.version) == ("mlperf-forest", "1")


# ------------------------------------------------------------------ serving


def test_deploy_predict_delete(
    azure_ml, scoring_server, job_run, make_frame, tmp_path, monkeypatch
):
    model = register_model("mlperf_job_9", ml_client=azure_ml.client)
    endpoint = deploy(model, "mlperf-ep", instance_count=1, ml_client=azure_ml.client)
    first, second = azure_ml.of("online_endpoints.begin_create_or_update")
    assert first.spec["auth_mode"] == "key" and first.spec["name"] == "mlperf-ep"
    assert second.spec["traffic"] == {"blue": 100} == endpoint.traffic
    (dep,) = azure_ml.of("online_deployments.begin_create_or_update")
    assert dep.spec["type"] == "managed"
    assert (dep.spec["instance_type"], dep.spec["instance_count"]) == ("Standard_DS3_v2", 1)
    assert dep.spec["model"]["path"] == "azureml://jobs/mlperf_job_9/outputs/model"
    assert dep.spec["code_configuration"]["scoring_script"] == "train_sklearn.py"
    assert dep.code == {"train_sklearn.py": training_script().read_bytes()}

    serve(azure_ml, scoring_server, job_run, tmp_path, monkeypatch)
    rows = make_frame(30, seed=3)[FEATURES]
    out = predict("mlperf-ep", rows, ml_client=azure_ml.client)
    expected = load_model(job_run.model_path).predict(rows.to_numpy())
    np.testing.assert_array_equal(out, expected)
    (sent,) = scoring_server.requests
    np.testing.assert_array_equal(np.asarray(sent["data"]), rows.to_numpy())  # exact floats
    assert scoring_server.headers[0]["Authorization"] == "Bearer test-primary-key"

    assert delete("mlperf-ep", ml_client=azure_ml.client) is True
    assert azure_ml.endpoints == {} and azure_ml.deployments == {}
    assert delete("mlperf-ep", ml_client=azure_ml.client) is False


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    frame=data_frames(
        [column(f, dtype=float, elements=st.floats(-1e6, 1e6)) for f in FEATURES],
        index=range_indexes(min_size=1, max_size=30),
    )
)
def test_predict_sends_the_rows_exactly_and_answers_each_in_order(
    azure_ml, scoring_server, job_run, tmp_path_factory, monkeypatch, frame
):
    if not azure_ml.endpoints:
        deploy(
            register_model("mlperf_job_9", ml_client=azure_ml.client),
            "mlperf-ep",
            ml_client=azure_ml.client,
        )
        serve(azure_ml, scoring_server, job_run, tmp_path_factory.mktemp("score"), monkeypatch)
    scoring_server.requests.clear()
    out = predict("mlperf-ep", frame, ml_client=azure_ml.client)
    (sent,) = scoring_server.requests
    np.testing.assert_array_equal(np.asarray(sent["data"]), frame.to_numpy())
    np.testing.assert_array_equal(out, load_model(job_run.model_path).predict(frame.to_numpy()))


def test_a_partial_deployment_is_cleaned_up(azure_ml):
    model = register_model("mlperf_job_9", ml_client=azure_ml.client)
    azure_ml.fail_deployment = "ResourceNotReady: not enough quota for Standard_DS3_v2"
    with pytest.raises(
        CloudError, match=r"not enough quota.*'mlperf-ep' and its deployments were deleted"
    ):
        deploy(model, "mlperf-ep", ml_client=azure_ml.client)
    assert len(azure_ml.of("online_deployments.begin_create_or_update")) == 1  # it was attempted
    assert azure_ml.endpoints == {} and azure_ml.deployments == {}  # nothing left billing


def test_predict_on_an_unreachable_endpoint(azure_ml, make_frame, dead_url):
    deploy(register_model("j", ml_client=azure_ml.client), "mlperf-ep", ml_client=azure_ml.client)
    azure_ml.scoring_uri = f"{dead_url}/score"
    with pytest.raises(CloudError, match=r"predict on endpoint 'mlperf-ep': Azure is unreachable"):
        predict("mlperf-ep", make_frame(3)[FEATURES], ml_client=azure_ml.client)


def test_predict_on_a_missing_endpoint(azure_ml, make_frame):
    with pytest.raises(CloudError, match="predict on endpoint 'nope': not found"):
        predict("nope", make_frame(3)[FEATURES], ml_client=azure_ml.client)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint_name": "1-starts-with-digit"}, "endpoint_name must be"),
        ({"endpoint_name": "x" * 33}, "endpoint_name must be"),
        (
            {"endpoint_name": "ok-name", "instance_count": 0},
            "instance_count must be an int >= 1; got 0",
        ),
        ({"endpoint_name": "ok-name", "auth_mode": "none"}, "auth_mode must be"),
    ],
)
def test_deploy_refuses_bad_settings_before_any_call(azure_ml, kwargs, message):
    with pytest.raises(ValueError, match=message):
        deploy("azureml:mlperf-forest:1", **kwargs, ml_client=azure_ml.client)
    assert azure_ml.calls == []


def test_predict_refuses_an_empty_table(azure_ml, make_frame):
    with pytest.raises(ValueError, match=r"non-empty 2-D table; got shape \(0, 10\)"):
        predict("mlperf-ep", make_frame(0)[FEATURES], ml_client=azure_ml.client)


def test_connect_without_a_config_says_where_to_get_one(tmp_path, offline_credential):
    with pytest.raises(CloudError, match=r"no Azure ML workspace config.*config.json"):
        connect(tmp_path, credential=offline_credential)


# ------------------------------------------------------------------ the whole flow


@pytest.mark.mlperf(metric="wall")
def test_offline_flow_time(
    benchmark,
    azure_ml,
    blob_service,
    container,
    train_frame,
    scoring_server,
    job_run,
    tmp_path,
    monkeypatch,
):
    """Wall time of upload -> train -> tune -> register -> deploy -> predict -> delete, offline."""
    rows = train_frame[FEATURES].iloc[:100]
    client = azure_ml.client

    def flow():
        asset = upload_data(train_frame, container, blob_service=blob_service, ml_client=client)
        train(asset, ml_client=client)
        sweep = tune(asset, ml_client=client)
        model = register_model(best_trial(sweep, ml_client=client), ml_client=client)
        deploy(model, "mlperf-flow", ml_client=client)
        if scoring_server.module is None:
            serve(azure_ml, scoring_server, job_run, tmp_path, monkeypatch)
        out = predict("mlperf-flow", rows, ml_client=client)
        delete("mlperf-flow", ml_client=client)
        return out

    def reset():
        azure_ml.calls.clear()
        return (), {}

    out = benchmark.pedantic(flow, setup=reset, rounds=5, warmup_rounds=1)
    np.testing.assert_array_equal(out, load_model(job_run.model_path).predict(rows.to_numpy()))
    assert azure_ml.endpoints == {}
    ops = [c.operation for c in azure_ml.calls]
    assert ops.count("jobs.create_or_update") == 2 and ops[-1] == "online_endpoints.begin_delete"


# ------------------------------------------------------------------ the real service


@pytest.mark.mlperf_cloud
def test_real_azure_flow(train_frame):
    """The same flow on Azure: config.json, AZURE_STORAGE_CONNECTION_STRING, MLPERF_AZURE_CONTAINER,
    MLPERF_AZURE_COMPUTE (a CPU cluster).  Costs a few cluster minutes, 10 sweep trials and a
    few minutes of a Standard_DS3_v2 endpoint."""
    config = os.environ.get("MLPERF_AZURE_CONFIG", "config.json")
    needed = ("AZURE_STORAGE_CONNECTION_STRING", "MLPERF_AZURE_CONTAINER", "MLPERF_AZURE_COMPUTE")
    if not Path(config).exists() or not all(os.environ.get(v) for v in needed):
        pytest.skip(
            "put the workspace's config.json in the working directory (or MLPERF_AZURE_CONFIG), "
            "set AZURE_STORAGE_CONNECTION_STRING, MLPERF_AZURE_CONTAINER and MLPERF_AZURE_COMPUTE, "
            "run `az login`, then pytest --mlperf-cloud suites/cloud/azure"
        )
    client = connect(config)
    compute = os.environ["MLPERF_AZURE_COMPUTE"]
    asset = upload_data(train_frame, os.environ["MLPERF_AZURE_CONTAINER"], ml_client=client)
    sweep = tune(asset, compute=compute, ml_client=client)
    model = register_model(best_trial(sweep, ml_client=client), ml_client=client)
    name = f"mlperf-ci-{os.getpid()}"
    try:
        deploy(model, name, ml_client=client)
        out = predict(name, train_frame[FEATURES].iloc[:20], ml_client=client)
        assert len(out) == 20 and set(np.unique(out)) <= {0, 1}
    finally:
        delete(name, ml_client=client)


def test_servers_listen_on_loopback_only(
    azurite: str, scoring_server: Any, assert_loopback_only: Callable[..., None]
) -> None:
    """Azurite and the stand-in inference server (issue 14 item 1)."""
    endpoint = dict(part.split("=", 1) for part in azurite.strip(";").split(";"))["BlobEndpoint"]
    assert_loopback_only(endpoint, scoring_server.start())

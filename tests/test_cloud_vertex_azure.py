"""Unit tests of mlperf.cloud.vertex and mlperf.cloud.azure: no server, no network.

The flows themselves are tested against local servers in suites/cloud/vertex and
suites/cloud/azure; here are the pieces that need none: import cost, validation
that must fire before any client is built, payload encoding and reply parsing.
"""

from __future__ import annotations

import importlib.metadata
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from mlperf.cloud.common import CloudError

pytestmark = [
    # azure-ai-ml's schemas trip marshmallow's own deprecation warnings on import
    pytest.mark.filterwarnings("ignore::DeprecationWarning:(marshmallow|azure)"),
]
HEAVY = (
    "google.cloud.aiplatform",
    "google.cloud.storage",
    "azure.ai.ml",
    "azure.storage",
    "sklearn",
)


def test_importing_the_provider_modules_imports_no_sdk():
    code = (
        "import sys, mlperf.cloud.vertex, mlperf.cloud.azure; "
        f"print(sorted(m for m in sys.modules if m.startswith({HEAVY!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------ vertex


@settings(max_examples=50, deadline=None)
@given(
    data_frames(
        [
            column("x", dtype=float, elements=st.floats(allow_nan=True, allow_infinity=False)),
            column("n", dtype=np.int64, elements=st.integers(-(2**62), 2**62)),
        ],
        index=range_indexes(min_size=1, max_size=20),
    )
)
def test_vertex_instances_keep_every_value_exactly(frame):
    from mlperf.cloud.vertex._serving import _instances

    for row, inst in zip(frame.itertuples(index=False), _instances(frame), strict=True):
        assert set(inst) == {"x", "n"} and all(
            v is None or isinstance(v, str) for v in inst.values()
        )
        if math.isnan(row.x):
            assert inst["x"] is None  # AutoML reads null as missing, never the text "nan"
        else:
            assert float(inst["x"]) == row.x
        assert int(inst["n"]) == row.n


def test_vertex_predictions_are_parsed_per_task():
    from mlperf.cloud.vertex._serving import _parse_prediction

    assert _parse_prediction({"classes": ["0", "1"], "scores": [0.2, 0.8]}) == {
        "label": "1",
        "score": 0.8,
    }
    assert _parse_prediction({"value": 3.5, "lower_bound": 1.0}) == {"value": 3.5}
    with pytest.raises(CloudError, match="unexpected prediction format"):
        _parse_prediction([0.1, 0.9])


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"fractions": (0.5, 0.5, 0.5)}, ValueError),
        ({"fractions": (1.2, -0.1, -0.1)}, ValueError),
        ({"fractions": (True, 0, 0)}, ValueError),
        ({"prediction_type": "forecasting"}, ValueError),
        ({"budget_milli_node_hours": 72001}, ValueError),
        ({"budget_milli_node_hours": "1000"}, TypeError),
    ],
)
def test_vertex_train_validates_before_connecting(kwargs, error):
    from mlperf.cloud.vertex import train

    with pytest.raises(error, match="train: "):
        train(object(), **kwargs)  # no session: it would try ADC if validation came later


def test_vertex_predict_refuses_an_empty_frame_before_connecting():
    from mlperf.cloud.vertex import predict

    with pytest.raises(ValueError, match=r"no rows to predict \(columns \['a'\]\)"):
        predict("projects/p/locations/l/endpoints/1", pd.DataFrame({"a": []}))


def test_vertex_dataset_needs_a_gcs_uri():
    from mlperf.cloud.vertex import create_dataset

    with pytest.raises(ValueError, match=r"gs:// URI; got 's3://b/train.csv'"):
        create_dataset("s3://b/train.csv")


# ------------------------------------------------------------------ azure


def test_azure_conda_spec_pins_what_is_installed_here():
    from mlperf.cloud.azure import conda_spec

    spec = conda_spec(("scikit-learn", "surely-not-installed-pkg"))
    python, pip_entry, pips = (
        spec["dependencies"][0],
        spec["dependencies"][1],
        spec["dependencies"][2],
    )
    assert python == f"python={sys.version_info.major}.{sys.version_info.minor}"
    assert pip_entry == "pip"
    assert f"scikit-learn=={importlib.metadata.version('scikit-learn')}" in pips["pip"]
    assert "surely-not-installed-pkg" in pips["pip"]  # unpinned rather than invented
    assert {"mlflow", "azureml-mlflow"} <= {p.split("==")[0] for p in pips["pip"]}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('Exception : \n {\n    "message": "boom"\n} ', "boom"),
        ('Exception : \n {"error": {"code": "UserError", "message": "no data"}} ', "no data"),
        (
            "Exception : \n Detailed error not set on the Run.",
            "Exception : \n Detailed error not set on the Run.",
        ),
        ("Exception : {not json}", "Exception : {not json}"),
    ],
)
def test_azure_job_error_is_unwrapped(message, expected):
    from mlperf.cloud.azure._training import _job_error

    assert _job_error(RuntimeError(message)) == expected


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda az: az.train("azureml:d:1", hyperparameters={"n_estimators": -1}), "n_estimators"),
        (lambda az: az.tune("azureml:d:1", ranges={"max_depth": (15, 5)}), "low > high"),
        (lambda az: az.deploy("azureml:m:1", "ab"), "endpoint_name must be"),
        (lambda az: az.predict("ep", np.zeros(3)), r"got shape \(3,\)"),
        (lambda az: az.upload_data(pd.DataFrame({"target": []}), "c"), "empty"),
    ],
)
def test_azure_verbs_validate_before_building_a_client(call, match):
    """With ml_client=None they would go to config.json; bad input must fail first."""
    from mlperf.cloud import azure

    with pytest.raises(ValueError, match=match):
        call(azure)


def test_azure_upload_without_any_storage_client_says_how_to_give_one(monkeypatch):
    from mlperf.cloud.azure import upload_data

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    frame = pd.DataFrame({"a": [1.0, 2.0], "target": [0, 1]})
    with pytest.raises(ValueError, match="AZURE_STORAGE_CONNECTION_STRING"):
        upload_data(frame, "c")

"""GCP fixtures: a Cloud Storage emulator and a fake Vertex AI API on 127.0.0.1, per session.

Cloud Storage is ``gcp-storage-emulator`` (real HTTP, the JSON API the
``google-cloud-storage`` client speaks), reached through ``STORAGE_EMULATOR_HOST``.
Vertex AI has no emulator, so :mod:`vertex_fake` serves the few REST resources the
flow uses and records what the real ``google-cloud-aiplatform`` SDK sent.  Both
are reset before each test; the environment is set per test with ``monkeypatch``,
so a ``cloud``-marked test in the same session still talks to Google Cloud.
"""

from __future__ import annotations

import logging
import math
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# pytest puts this directory on sys.path (rootdir-relative conftest, no __init__.py)
from vertex_fake import FakeVertex

from mlperf._optional import require

PROJECT = "mlperf-test"
LOCATION = "us-central1"
BUCKET = "mlperf-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[Any]:
    """A gcp-storage-emulator server on 127.0.0.1 and a free port, in memory, for the session."""
    server_mod = require("gcp_storage_emulator.server", "the offline GCP tests")
    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    port = free_port()
    server = server_mod.create_server("127.0.0.1", port, in_memory=True)
    server.start()
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def vertex_server() -> Iterator[FakeVertex]:
    """The fake Vertex AI v1 REST API, for the session."""
    fake = FakeVertex().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def vertex(vertex_server: FakeVertex) -> FakeVertex:
    """The fake Vertex API, emptied: no resources, no recorded requests, default predictor."""
    vertex_server.reset()
    return vertex_server


@pytest.fixture
def gcp(gcs_emulator: Any, vertex: FakeVertex, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A :class:`mlperf.cloud.vertex.VertexSession` on the emulator and the fake, both empty."""
    from mlperf.cloud.vertex import connect

    anonymous = require("google.auth.credentials", "the offline GCP tests").AnonymousCredentials
    gcs_emulator.wipe()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    return connect(PROJECT, LOCATION, credentials=anonymous(), api_endpoint=vertex.url)


@pytest.fixture
def bucket(gcp: Any) -> str:
    gcp.storage_client().create_bucket(BUCKET)
    return BUCKET


# make_frame and train_frame (the tutorial's data) come from suites/cloud/conftest.py


def sum_rule(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A predictor for the fake: the data's true rule, in AutoML tabular's reply format."""
    out = []
    for inst in instances:
        total = sum(float(v) for k, v in inst.items() if k.startswith("feature_"))
        # the winner's score is strictly above 0.5 even for sums that round to zero
        p = 0.51 + 0.48 * math.tanh(total) if total > 0 else 0.49 + 0.48 * math.tanh(total)
        out.append({"classes": ["0", "1"], "scores": [1 - p, p]})
    return out


@pytest.fixture
def rule_predictor() -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """:func:`sum_rule`: answers like a model that learned the data perfectly."""
    return sum_rule


@pytest.fixture
def dead_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def fake_model(gcp: Any, vertex: FakeVertex) -> Callable[[], Any]:
    """A Vertex ``Model`` made through one fake pipeline, skipping upload and dataset (cheap)."""
    aiplatform = require("google.cloud.aiplatform", "the offline GCP tests")

    def make() -> Any:
        pipeline = vertex._create_pipeline(
            f"projects/{gcp.project}/locations/{gcp.location}",
            {"modelToUpload": {"displayName": "m"}},
        )
        return aiplatform.Model(pipeline["modelToUpload"]["name"], **gcp._kw())

    return make

"""Google Vertex AI: CSV to Cloud Storage, AutoML tabular training, deploy, predict, delete.

The AutoML tabular flow on ``google-cloud-aiplatform>=2.7``: the CSV is uploaded
before the dataset points at it, the model is undeployed before its endpoint is
deleted (Vertex refuses otherwise), and predictions send named columns, as AutoML
tabular models require.

Every verb takes ``session``, a :class:`VertexSession` from :func:`connect`; None
connects with the standard configuration (``aiplatform.init`` defaults:
``GOOGLE_CLOUD_PROJECT`` and Application Default Credentials).  ``connect`` also
takes ``api_endpoint`` and ``credentials``, which is how the suites point the SDK at
a local fake of the Vertex REST API; Cloud Storage follows ``STORAGE_EMULATOR_HOST``.
Vertex AutoML has no separate tuning step (the service searches itself), so
there is no ``tune`` here.
"""

from __future__ import annotations

from mlperf.cloud.vertex._base import DEFAULT_MACHINE_TYPE, VertexSession, connect
from mlperf.cloud.vertex._serving import delete, deploy, predict
from mlperf.cloud.vertex._training import OBJECTIVES, create_dataset, train, upload_data

__all__ = [
    "DEFAULT_MACHINE_TYPE",
    "OBJECTIVES",
    "VertexSession",
    "connect",
    "create_dataset",
    "delete",
    "deploy",
    "predict",
    "train",
    "upload_data",
]

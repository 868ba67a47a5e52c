"""Azure Machine Learning (SDK v2): upload, train, tune, register, deploy, predict, delete.

SDK v1 (``azureml-core``) is out of support since 2026-06-30 and cannot be
installed beside numpy 2 / pandas 3, so the flow runs on SDK v2:
the CSV goes to Blob Storage and becomes a ``uri_file`` data asset; a ``command()``
job runs mlperf's training script (:func:`mlperf.cloud.training_script`, the one
:func:`mlperf.cloud.run_local` runs with ``provider="azure"``) in an environment
built from a conda spec pinned to the versions installed here; ``.sweep()``
searches :data:`mlperf.cloud.common.DEFAULT_RANGES`; the best model is registered and served by a
managed online endpoint whose scoring script is the same file (``init``/``run``).

Every verb takes ``ml_client``, an ``azure.ai.ml.MLClient``; None builds one with
:func:`connect` (``config.json`` + ``DefaultAzureCredential``), lazily.  Blob
uploads take a ``BlobServiceClient`` or a connection string, so they run against
Azurite as well as Azure.  SDK telemetry is off.
"""

from __future__ import annotations

from mlperf.cloud.azure._base import BASE_IMAGE, conda_spec, connect, environment
from mlperf.cloud.azure._serving import DEFAULT_INSTANCE_TYPE, delete, deploy, predict
from mlperf.cloud.azure._training import (
    DEFAULT_COMPUTE,
    best_trial,
    register_model,
    train,
    tune,
    upload_data,
)

__all__ = [
    "BASE_IMAGE",
    "DEFAULT_COMPUTE",
    "DEFAULT_INSTANCE_TYPE",
    "best_trial",
    "conda_spec",
    "connect",
    "delete",
    "deploy",
    "environment",
    "predict",
    "register_model",
    "train",
    "tune",
    "upload_data",
]

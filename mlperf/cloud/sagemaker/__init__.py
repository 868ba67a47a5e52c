"""Amazon SageMaker: upload, train, tune, deploy, predict and delete (SageMaker SDK v3 + boto3).

Training and tuning go through the v3 SDK (``sagemaker.train.ModelTrainer`` and
``sagemaker.train.tuner.HyperparameterTuner``) with mlperf's own training script
(:func:`mlperf.cloud.training_script`) in the stock scikit-learn image.  The
deployment (model, endpoint config, endpoint), predictions and clean-up use
plain boto3: the v3 deploy classes cannot be pointed at a local server.

Every verb takes ``session``: a ``boto3.Session`` (or anything with
``.client(name)``, or a SageMaker SDK ``Session``); None builds one from the
standard AWS configuration (environment, profile, role).  ``AWS_ENDPOINT_URL``
redirects everything, which is how the suites run it against a moto server.
The SDK's telemetry is switched off.
"""

from __future__ import annotations

from mlperf.cloud.sagemaker._base import (
    DEFAULT_INSTANCE_TYPE,
    FRAMEWORK_VERSION,
    Deployment,
    TrainingJob,
    TuningJob,
    image_uri,
    make_session,
)
from mlperf.cloud.sagemaker._cleanup import delete
from mlperf.cloud.sagemaker._serving import deploy, predict
from mlperf.cloud.sagemaker._training import (
    best_training_job,
    train,
    tune,
    tuning_results,
    upload_data,
    wait_for_training_job,
)

__all__ = [
    "DEFAULT_INSTANCE_TYPE",
    "FRAMEWORK_VERSION",
    "Deployment",
    "TrainingJob",
    "TuningJob",
    "best_training_job",
    "delete",
    "deploy",
    "image_uri",
    "make_session",
    "predict",
    "train",
    "tune",
    "tuning_results",
    "upload_data",
    "wait_for_training_job",
]

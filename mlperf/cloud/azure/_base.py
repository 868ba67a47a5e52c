"""Azure ML plumbing of :mod:`mlperf.cloud.azure`: client, error mapping, environment, staging."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud import training_script
from mlperf.cloud.common import AZURE_CLIENT_KWARGS, CloudError, disable_telemetry

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from azure.ai.ml import MLClient

__all__ = ["BASE_IMAGE", "conda_spec", "connect", "environment"]

BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"


def connect(
    config_path: str | os.PathLike[str] | None = None, *, credential: Any = None
) -> MLClient:
    """An ``MLClient`` from the workspace's ``config.json``, with telemetry off.

    Parameters
    ----------
    config_path:
        The ``config.json`` (or a directory to search upwards from); None searches from
        the working directory, as ``MLClient.from_config`` does.
    credential:
        An ``azure.core`` token credential; None uses ``DefaultAzureCredential``
        (environment, managed identity, ``az login``).

    Raises
    ------
    CloudError
        No config file was found or it is malformed.
    """
    disable_telemetry()
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

    if credential is None:
        credential = require("azure.identity", "Azure ML").DefaultAzureCredential()
    try:
        return ml.MLClient.from_config(
            credential=credential, path=config_path, **AZURE_CLIENT_KWARGS
        )
    except Exception as exc:  # noqa: BLE001 - the SDK raises its own ValidationException for a missing file
        raise CloudError(
            f"connect: no Azure ML workspace config at {str(config_path or os.getcwd())!r} "
            f"({exc}); "
            "download config.json from the workspace's overview page in the Azure portal, "
            "or pass ml_client=MLClient(credential, subscription_id, resource_group, workspace)"
        ) from None


def resolve_client(ml_client: MLClient | None) -> MLClient:
    return ml_client if ml_client is not None else connect()


def azure_call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an SDK call, turning Azure transport and service errors into a CloudError."""
    require("azure.core.exceptions", "Azure ML")
    from azure.core import exceptions as errors

    try:
        return fn(*args, **kwargs)
    except errors.ServiceRequestError as exc:
        raise CloudError(
            f"{what}: Azure is unreachable ({exc}); check the network and the endpoint"
        ) from None
    except errors.ServiceResponseError as exc:  # connected, but no (complete) answer
        raise CloudError(
            f"{what}: Azure did not answer ({exc}); check the endpoint and the network"
        ) from None
    except errors.ResourceNotFoundError as exc:
        raise CloudError(f"{what}: not found ({exc.message})") from None
    except errors.HttpResponseError as exc:
        raise CloudError(f"{what}: Azure refused the request ({exc.message})") from None


def conda_spec(packages: tuple[str, ...] = ("scikit-learn", "pandas", "joblib")) -> dict[str, Any]:
    """The conda spec of the training/serving environment, pinned to the versions installed here.

    The job then runs the code that :func:`mlperf.cloud.run_local` tested locally.
    ``mlflow`` and ``azureml-mlflow`` are added (unpinned when not installed here):
    the script logs ``accuracy`` through them, which is where a sweep reads its metric.
    """
    pins = []
    for name in (*packages, "mlflow", "azureml-mlflow"):
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "name": "mlperf-sklearn",
        "channels": ["conda-forge"],
        "dependencies": [f"python={python}", "pip", {"pip": pins}],
    }


def environment(spec: Mapping[str, Any] | None = None, image: str = BASE_IMAGE) -> Any:
    """An Azure ML ``Environment``: *image* plus the conda spec (default :func:`conda_spec`)."""
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

    return ml.entities.Environment(
        name="mlperf-sklearn", image=image, conda_file=dict(spec or conda_spec())
    )


@contextmanager
def staged(script: str | os.PathLike[str] | None) -> Iterator[Path]:
    """A directory holding only the script: Azure uploads the whole code directory."""
    src = Path(script) if script is not None else training_script()
    if not src.is_file():
        raise FileNotFoundError(f"training script {str(src)!r} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix="mlperf-azure-code-"))
    try:
        shutil.copyfile(src, tmp / src.name)
        yield tmp / src.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _script_flags() -> set[str]:
    """The options mlperf's own training script accepts (it ignores unknown ones silently)."""
    spec = importlib.util.spec_from_file_location("_mlperf_train_sklearn", training_script())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # module level only defines functions
    return set(vars(module.parse_args([])))


def check_names(names: Any, script: Any, func: str) -> None:
    """Refuse a hyper-parameter mlperf's script would ignore; a user's own script is trusted."""
    if script is not None:
        return
    known = _script_flags() - {"data", "model_dir", "output_dir"}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(
            f"{func}: the training script has no option for {unknown!r} and would ignore it; "
            f"use {sorted(known)!r} or pass script= with your own"
        )

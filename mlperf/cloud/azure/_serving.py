"""Azure ML serving: managed online endpoint + deployment, invoke, delete."""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud.azure._base import azure_call, environment, resolve_client, staged
from mlperf.cloud.common import CloudError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from azure.ai.ml import MLClient

__all__ = ["DEFAULT_INSTANCE_TYPE", "delete", "deploy", "predict"]

DEFAULT_INSTANCE_TYPE = "Standard_DS3_v2"
_ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")


def deploy(
    model: Any,
    endpoint_name: str,
    *,
    deployment_name: str = "blue",
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    instance_count: int = 1,
    auth_mode: str = "key",
    env: Any = None,
    script: str | os.PathLike[str] | None = None,
    ml_client: MLClient | None = None,
) -> Any:
    """Create a managed online endpoint serving *model* through the script's ``init``/``run``.

    The deployment takes all traffic.  If creating it fails, the endpoint (and any
    partial deployment) is deleted before the error is raised.

    Raises
    ------
    ValueError
        An invalid endpoint name, instance count or auth mode.
    CloudError
        Azure refused; the message says what was cleaned up.
    """
    if not isinstance(endpoint_name, str) or not _ENDPOINT_NAME.match(endpoint_name):
        raise ValueError(
            "deploy: endpoint_name must be 3-32 letters, digits and '-', starting with a letter; "
            f"got {endpoint_name!r}"
        )
    if not isinstance(instance_count, int) or instance_count < 1:
        raise ValueError(f"deploy: instance_count must be an int >= 1; got {instance_count!r}")
    if auth_mode not in ("key", "aml_token", "aad_token"):
        raise ValueError(
            f"deploy: auth_mode must be 'key', 'aml_token' or 'aad_token'; got {auth_mode!r}"
        )
    require("azure.ai.ml", "Azure ML")
    from azure.ai import ml

    ml_client = resolve_client(ml_client)
    endpoint = ml.entities.ManagedOnlineEndpoint(name=endpoint_name, auth_mode=auth_mode)
    azure_call(
        "deploy", lambda: ml_client.online_endpoints.begin_create_or_update(endpoint).result()
    )
    try:
        with staged(script) as code:
            deployment = ml.entities.ManagedOnlineDeployment(
                name=deployment_name,
                endpoint_name=endpoint_name,
                model=model,
                environment=env if env is not None else environment(),
                code_configuration=ml.entities.CodeConfiguration(
                    code=str(code.parent), scoring_script=code.name
                ),
                instance_type=instance_type,
                instance_count=instance_count,
            )
            azure_call(
                "deploy",
                lambda: ml_client.online_deployments.begin_create_or_update(deployment).result(),
            )
        endpoint.traffic = {deployment_name: 100}
        azure_call(
            "deploy", lambda: ml_client.online_endpoints.begin_create_or_update(endpoint).result()
        )
    except Exception as exc:  # noqa: BLE001 - any SDK failure: a redacted CloudError
        try:
            ml_client.online_endpoints.begin_delete(name=endpoint_name).result()
            cleaned = f"endpoint {endpoint_name!r} and its deployments were deleted"
        except Exception as cleanup:  # noqa: BLE001 -- report both: the user must delete it by hand
            cleaned = (
                f"deleting endpoint {endpoint_name!r} also failed ({cleanup}); delete it by hand"
            )
        raise CloudError(
            f"deploy: deployment {deployment_name!r} failed ({exc}); {cleaned}"
        ) from None
    return endpoint


def predict(
    endpoint_name: str,
    rows: pd.DataFrame | np.ndarray,
    *,
    deployment_name: str | None = None,
    ml_client: MLClient | None = None,
) -> np.ndarray:
    """Invoke the endpoint on *rows* (features in training order); one prediction per row.

    Raises
    ------
    ValueError
        *rows* is empty or not two-dimensional.
    CloudError
        The endpoint is unreachable, missing, refused, or answered the wrong number of rows.
    """
    import numpy as np

    matrix = np.asarray(rows, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"predict: rows must be a non-empty 2-D table; got shape {matrix.shape!r}")
    ml_client = resolve_client(ml_client)
    with tempfile.TemporaryDirectory(prefix="mlperf-azure-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_text(json.dumps({"data": matrix.tolist()}))
        reply = azure_call(
            f"predict on endpoint {endpoint_name!r}",
            ml_client.online_endpoints.invoke,
            endpoint_name=endpoint_name,
            request_file=str(request),
            deployment_name=deployment_name,
        )
    values = json.loads(reply) if isinstance(reply, str) else reply
    if isinstance(values, str):  # a scoring script returning json.dumps(...) is encoded twice
        values = json.loads(values)
    if not isinstance(values, list) or len(values) != len(matrix):
        raise CloudError(
            f"predict: endpoint {endpoint_name!r} answered {str(values)[:200]!r} for {len(matrix)} "
            "rows"
        )
    return np.asarray(values)


def delete(endpoint_name: str, *, ml_client: MLClient | None = None) -> bool:
    """Delete the endpoint and all its deployments; False when it did not exist."""
    require("azure.core.exceptions", "Azure ML")
    from azure.core import exceptions as errors

    ml_client = resolve_client(ml_client)
    try:
        ml_client.online_endpoints.begin_delete(name=endpoint_name).result()
    except errors.ResourceNotFoundError:
        return False
    except errors.AzureError as exc:
        raise CloudError(f"delete: deleting endpoint {endpoint_name!r} failed: {exc}") from None
    return True

"""Vertex AI serving: deploy a model to an endpoint, predict, undeploy and delete."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlperf._optional import require
from mlperf.cloud.common import CloudError
from mlperf.cloud.vertex._base import (
    DEFAULT_MACHINE_TYPE,
    VertexSession,
    resolve_session,
    vertex_call,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["delete", "deploy", "predict"]


def deploy(
    model: Any,
    *,
    machine_type: str = DEFAULT_MACHINE_TYPE,
    accelerator_type: str | None = None,
    accelerator_count: int = 0,
    min_replica_count: int = 1,
    max_replica_count: int = 1,
    display_name: str = "mlperf-endpoint",
    session: VertexSession | None = None,
) -> Any:
    """Create an endpoint and deploy *model* to it on dedicated machines; return the endpoint.

    If deploying fails after the endpoint exists, the endpoint is deleted before the
    error is raised, so nothing is left billing.

    Parameters
    ----------
    machine_type, accelerator_type, accelerator_count:
        The machine spec, e.g. ``"n1-standard-4"``, ``"NVIDIA_TESLA_T4"``, 1.  Check that
        the model type can use an accelerator: AutoML tabular models serve on CPU.
    min_replica_count, max_replica_count:
        Autoscaling bounds.

    Raises
    ------
    ValueError
        An accelerator type without a count (or the reverse), or bad replica counts.
    CloudError
        Creating the endpoint or deploying failed; the message says what was cleaned up.
    """
    if bool(accelerator_type) != (accelerator_count > 0):
        raise ValueError(
            "deploy: accelerator_type and accelerator_count go together; got "
            f"accelerator_type={accelerator_type!r}, accelerator_count={accelerator_count!r}; "
            "e.g. accelerator_type='NVIDIA_TESLA_T4', accelerator_count=1"
        )
    if not 1 <= min_replica_count <= max_replica_count:
        raise ValueError(
            "deploy: need 1 <= min_replica_count <= max_replica_count; got "
            f"{min_replica_count!r}, {max_replica_count!r}"
        )
    s = resolve_session(session)
    require("google.cloud.aiplatform", "Vertex AI")
    from google.cloud import aiplatform

    endpoint = vertex_call(
        "deploy", s, aiplatform.Endpoint.create, display_name=display_name, **s._kw()
    )
    try:
        vertex_call(
            "deploy",
            s,
            model.deploy,
            endpoint=endpoint,
            machine_type=machine_type,
            accelerator_type=accelerator_type,
            accelerator_count=accelerator_count or None,
            min_replica_count=min_replica_count,
            max_replica_count=max_replica_count,
            traffic_percentage=100,
        )
    except Exception as exc:  # noqa: BLE001 - any SDK failure: a redacted CloudError
        try:
            endpoint.delete(force=True)
            cleaned = f"endpoint {endpoint.resource_name!r} was deleted"
        except Exception as cleanup:  # noqa: BLE001 -- report both: the user must delete it by hand
            cleaned = (
                f"deleting endpoint {endpoint.resource_name!r} also failed ({cleanup}); "
                "delete it by hand"
            )
        raise CloudError(
            f"deploy: deploying model {getattr(model, 'resource_name', model)!r} failed ({exc}); "
            f"{cleaned}"
        ) from None
    return endpoint


def _instances(rows: pd.DataFrame) -> list[dict[str, Any]]:
    # AutoML tabular reads every CSV column as text; repr keeps floats exact, null is "missing"
    out = []
    for record in rows.to_dict(orient="records"):
        out.append(
            {
                str(k): None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for k, v in record.items()
            }
        )
    return out


def predict(
    endpoint: Any,
    rows: pd.DataFrame,
    *,
    batch_size: int = 500,
    session: VertexSession | None = None,
) -> pd.DataFrame:
    """Online predictions for *rows*; one output row per input row, same index.

    Parameters
    ----------
    endpoint:
        The ``Endpoint`` from :func:`deploy`, or its resource name.
    rows:
        Feature columns named as in training (AutoML tabular needs the names; a bare
        array is refused).
    batch_size:
        Rows per request (Vertex caps a request at 1.5 MB).

    Returns
    -------
    DataFrame
        Classification: ``label`` (the top class, as a string) and ``score`` (its
        probability); regression: ``value``.

    Raises
    ------
    TypeError
        *rows* is not a DataFrame.
    ValueError
        *rows* is empty.
    CloudError
        The endpoint is unreachable, refused, or answered a different number of rows.
    """
    import pandas as pd

    if not isinstance(rows, pd.DataFrame):
        raise TypeError(
            f"predict: AutoML tabular models need named columns; got {type(rows).__name__}; "
            "pass a DataFrame with the training feature columns"
        )
    if len(rows) == 0:
        raise ValueError(f"predict: no rows to predict (columns {list(rows.columns)!r})")
    s = resolve_session(session)
    if isinstance(endpoint, str):
        require("google.cloud.aiplatform", "Vertex AI")
        from google.cloud import aiplatform

        endpoint = vertex_call("predict", s, aiplatform.Endpoint, endpoint, **s._kw())
    out: list[dict[str, Any]] = []
    for start in range(0, len(rows), batch_size):
        batch = _instances(rows.iloc[start : start + batch_size])
        reply = vertex_call("predict", s, endpoint.predict, instances=batch)
        if len(reply.predictions) != len(batch):
            raise CloudError(
                f"predict: endpoint {endpoint.resource_name!r} answered "
                f"{len(reply.predictions)} predictions for {len(batch)} rows"
            )
        out.extend(_parse_prediction(p) for p in reply.predictions)
    return pd.DataFrame(out, index=rows.index)


def _parse_prediction(p: Any) -> dict[str, Any]:
    if isinstance(p, dict) and "classes" in p and "scores" in p:
        scores = [float(x) for x in p["scores"]]
        best = max(range(len(scores)), key=scores.__getitem__)
        return {"label": str(p["classes"][best]), "score": scores[best]}
    if isinstance(p, dict) and "value" in p:
        return {"value": float(p["value"])}
    raise CloudError(f"predict: unexpected prediction format {p!r}")


def delete(
    endpoint: Any,
    *,
    model: Any = None,
    dataset: Any = None,
    session: VertexSession | None = None,
) -> list[str]:
    """Undeploy every model from *endpoint*, delete it, then *model* and *dataset* if given.

    Returns
    -------
    list of str
        Resource names deleted, in order.

    Raises
    ------
    CloudError
        A delete failed; resources before it in the order above are already gone.
    """
    s = resolve_session(session)
    require("google.cloud.aiplatform", "Vertex AI")
    from google.cloud import aiplatform

    if isinstance(endpoint, str):
        endpoint = vertex_call("delete", s, aiplatform.Endpoint, endpoint, **s._kw())
    vertex_call("delete", s, endpoint.undeploy_all)  # Vertex refuses to delete an endpoint in use
    gone = []
    for resource in (endpoint, model, dataset):
        if resource is not None:
            name = resource.resource_name
            vertex_call("delete", s, resource.delete)
            gone.append(name)
    return gone

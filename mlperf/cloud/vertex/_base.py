"""Vertex AI plumbing of :mod:`mlperf.cloud.vertex`: the session, connecting, error mapping."""

from __future__ import annotations

import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlperf._optional import require
from mlperf.cloud.common import CloudError, disable_telemetry

__all__ = ["DEFAULT_MACHINE_TYPE", "VertexSession", "connect"]

DEFAULT_MACHINE_TYPE = "n1-standard-4"


@dataclass(frozen=True)
class VertexSession:
    """Where Vertex calls go: project, region, credentials and (for local fakes) the API URL."""

    project: str
    location: str
    credentials: Any = None
    api_endpoint: str | None = None

    def _kw(self) -> dict[str, Any]:
        return {"project": self.project, "location": self.location, "credentials": self.credentials}

    def storage_client(self) -> Any:
        """This project's Cloud Storage client (the emulator if STORAGE_EMULATOR_HOST is set)."""
        storage = require("google.cloud.storage", "Vertex AI data upload")
        credentials = self.credentials
        if credentials is None and os.environ.get("STORAGE_EMULATOR_HOST"):
            credentials = require("google.auth.credentials").AnonymousCredentials()
        return storage.Client(project=self.project, credentials=credentials)


def connect(
    project: str | None = None,
    location: str = "us-central1",
    *,
    credentials: Any = None,
    api_endpoint: str | None = None,
    api_transport: str | None = None,
) -> VertexSession:
    """Initialise the Vertex SDK (``aiplatform.init``) and return the session the verbs take.

    Parameters
    ----------
    project:
        Google Cloud project id; None reads ``GOOGLE_CLOUD_PROJECT`` / the ADC project.
    location:
        Region of the Vertex resources.
    credentials:
        ``google.auth`` credentials; None uses Application Default Credentials.
    api_endpoint:
        Override of the Vertex API host, e.g. ``http://127.0.0.1:8123`` for a local fake.
    api_transport:
        ``"grpc"`` or ``"rest"``; an ``http://`` endpoint implies ``"rest"``.

    Raises
    ------
    CloudError
        No project could be determined or no credentials were found.
    """
    disable_telemetry()
    require("google.cloud.aiplatform", "Vertex AI")
    from google.cloud import aiplatform

    if api_endpoint and api_endpoint.startswith("http://") and api_transport is None:
        api_transport = "rest"  # gRPC cannot speak to a plain-HTTP endpoint
    try:
        aiplatform.init(
            project=project,
            location=location,
            credentials=credentials,
            api_endpoint=api_endpoint,
            api_transport=api_transport,
        )
        config = aiplatform.initializer.global_config
        resolved = config.project
    except Exception as exc:  # noqa: BLE001 - google.auth raises DefaultCredentialsError, init ValueError
        raise CloudError(
            f"connect: cannot reach Vertex AI in project {project!r} ({exc}); pass project= "
            "and run `gcloud auth application-default login` or set "
            "GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    return VertexSession(resolved, config.location, credentials, api_endpoint)


def resolve_session(session: VertexSession | None) -> VertexSession:
    return session if session is not None else connect()


def _where(session: VertexSession) -> str:
    return session.api_endpoint or f"{session.location}-aiplatform.googleapis.com"


_REACHED: dict[tuple[str, int], float] = {}  # (host, port) -> monotonic time last reached


def _probe(what: str, session: VertexSession, timeout: float = 5.0) -> None:
    """Fail fast when the API host does not accept connections.

    The SDK retries every read for up to 120 s on connection errors; one TCP
    connect (remembered for a minute) turns that wait into an immediate, clear error.
    """
    where = _where(session)
    url = urlsplit(where if "//" in where else f"https://{where}")
    host, port = url.hostname or "", url.port or (80 if url.scheme == "http" else 443)
    now = time.monotonic()
    if now - _REACHED.get((host, port), -math.inf) < 60:
        return
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise CloudError(
            f"{what}: Vertex AI at {_where(session)!r} is unreachable ({exc}); check the "
            "network, the region and api_endpoint"
        ) from None
    _REACHED[(host, port)] = now


def vertex_call(what: str, session: VertexSession, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an SDK call, turning transport and API failures into a CloudError naming *what*."""
    require("google.api_core.exceptions")
    from google.api_core import exceptions

    require("requests")
    import requests

    _probe(what, session)
    try:
        return fn(*args, **kwargs)
    except (requests.exceptions.ConnectionError, exceptions.RetryError) as exc:
        raise CloudError(
            f"{what}: Vertex AI at {_where(session)!r} is unreachable ({exc}); check the "
            "network, the region and api_endpoint"
        ) from None
    except exceptions.GoogleAPICallError as exc:
        raise CloudError(f"{what}: Vertex AI refused the request: {exc}") from None

"""A small local fake of the Vertex AI v1 REST API, for the offline Vertex suite.

It serves the handful of resources the mlperf Vertex flow touches (datasets,
training pipelines, models, endpoints, operations) on 127.0.0.1 and records every
request the real ``google-cloud-aiplatform`` SDK sends, so tests assert on the wire
payload rather than on what mlperf *meant* to send.  It does not train: a training
pipeline succeeds at once (or fails, when told to) and its model answers
predictions through a callable the test supplies.

Behaviour the SDK depends on (google-cloud-aiplatform 2.7):

* long-running operations come back already ``done`` with their response packed
  as a ``google.protobuf.Any``;
* paths arrive percent-encoded and model names may carry ``@version``;
* models advertise ``supportedDeploymentResourcesTypes: ["DEDICATED_RESOURCES"]``,
  otherwise ``Model.deploy`` silently drops the machine spec;
* deleted endpoints stay readable (the SDK re-reads a resource after deleting it).

Like the real service, deleting an endpoint that still has deployed models fails
with FAILED_PRECONDITION, and predicting on an endpoint without a deployed model
fails too — so a bare ``endpoint.delete()`` (without undeploying first) is caught.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["FakeVertex", "Recorded"]

_TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."
_NOW = "2026-11-26T00:00:00Z"
Predictor = Callable[[list[Any]], list[Any]]


@dataclass(frozen=True)
class Recorded:
    """One request as the SDK sent it: method, decoded path, :verb, query and JSON body."""

    method: str
    path: str
    verb: str
    query: dict[str, list[str]]
    body: dict[str, Any]


class _HttpError(Exception):
    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def _uniform_scores(instances: list[Any]) -> list[Any]:
    return [{"classes": ["0", "1"], "scores": [0.5, 0.5]} for _ in instances]


@dataclass
class FakeVertex:
    """The fake service.  Start with :meth:`start`; point the SDK at :attr:`url`.

    Attributes
    ----------
    requests:
        Every request received, in order.
    predictor:
        Maps a predict call's ``instances`` to its ``predictions``.
    fail_training:
        When set, the next training pipeline ends FAILED with this message.
    """

    requests: list[Recorded] = field(default_factory=list)
    predictor: Predictor = _uniform_scores
    fail_training: str | None = None
    fail_deploy: str | None = None
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> FakeVertex:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                return None

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = fake._dispatch(self.command, self.path, raw)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeVertex.start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.resources.clear()
            self.deleted.clear()
            self.predictor = _uniform_scores
            self.fail_training = self.fail_deploy = None

    # ----------------------------------------------------------------- queries
    def calls(
        self, method: str | None = None, collection: str = "", verb: str | None = None
    ) -> list[Recorded]:
        """Recorded requests filtered by HTTP method, collection (``"endpoints"``) and ``:verb``.

        ``verb=None`` matches any verb; ``verb=""`` only plain resource calls.
        """
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and (not collection or f"/{collection}" in r.path)
            and (verb is None or r.verb == verb)
        ]

    def live(self, collection: str) -> list[str]:
        """Names of resources of *collection* that exist and are not deleted."""
        return [n for n in self.resources if f"/{collection}/" in n and n not in self.deleted]

    # ----------------------------------------------------------------- dispatch
    def _dispatch(self, method: str, raw_path: str, raw_body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        path, _, verb = path.partition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
        body = json.loads(raw_body) if raw_body.strip() else {}
        record = Recorded(method, path, verb, parse_qs(parts.query), body)
        with self._lock:
            self.requests.append(record)
            try:
                return 200, self._route(record)
            except _HttpError as err:
                return err.code, {
                    "error": {"code": err.code, "status": err.status, "message": err.message}
                }

    def _route(self, r: Recorded) -> dict[str, Any]:
        if not r.path.startswith("/v1/projects/"):
            raise _HttpError(404, "NOT_FOUND", f"unknown path {r.path!r}")
        name = r.path[len("/v1/") :].split("@", 1)[0]  # models/123@1 -> models/123
        segments = name.split("/")
        if len(segments) % 2 == 1:  # .../locations/l/<collection>: a create
            if r.method != "POST":
                raise _HttpError(501, "UNIMPLEMENTED", f"fake: {r.method} {name}")
            parent, collection = name.rsplit("/", 1)
            creators = {
                "datasets": self._create_dataset,
                "trainingPipelines": self._create_pipeline,
                "endpoints": self._create_endpoint,
            }
            if collection not in creators:
                raise _HttpError(501, "UNIMPLEMENTED", f"fake: create {collection}")
            return creators[collection](parent, r.body)
        collection = segments[-2]
        if collection == "operations":
            return self._get(name)
        if r.method == "GET":
            return self._get(name)
        if r.method == "DELETE":
            return self._delete(name)
        verbs = {
            "deployModel": self._deploy_model,
            "undeployModel": self._undeploy_model,
            "predict": self._predict,
        }
        if collection == "endpoints" and r.verb in verbs:
            return verbs[r.verb](name, r.body)
        raise _HttpError(501, "UNIMPLEMENTED", f"fake: {r.method} {name}:{r.verb}")

    # ----------------------------------------------------------------- helpers
    def _new(self, parent: str, collection: str, body: dict[str, Any]) -> dict[str, Any]:
        rid = str(next(self._ids))
        resource = {
            **body,
            "name": f"{parent}/{collection}/{rid}",
            "createTime": _NOW,
            "updateTime": _NOW,
        }
        self.resources[resource["name"]] = resource
        return resource

    def _operation(
        self, parent_name: str, response_type: str, response: dict[str, Any]
    ) -> dict[str, Any]:
        location = "/".join(parent_name.split("/")[:4])
        op = {
            "name": f"{location}/operations/{next(self._ids)}",
            "done": True,
            "response": {"@type": response_type, **response},
        }
        self.resources[op["name"]] = op
        return op

    def _get(self, name: str) -> dict[str, Any]:
        if name not in self.resources:
            raise _HttpError(404, "NOT_FOUND", f"resource {name!r} not found")
        return self.resources[name]

    # ----------------------------------------------------------------- resources
    def _create_dataset(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        dataset = self._new(parent, "datasets", body)
        return self._operation(parent, _TYPE + "Dataset", dataset)

    def _create_pipeline(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        pipeline = self._new(parent, "trainingPipelines", body)
        if self.fail_training is not None:
            pipeline["state"] = "PIPELINE_STATE_FAILED"
            pipeline["error"] = {"code": 3, "message": self.fail_training}
            self.fail_training = None
            return pipeline
        wanted = body.get("modelToUpload", {})
        model = self._new(parent, "models", wanted)
        model.update(
            versionId="1",
            supportedDeploymentResourcesTypes=["DEDICATED_RESOURCES"],
            trainingPipeline=pipeline["name"],
        )
        pipeline["state"] = "PIPELINE_STATE_SUCCEEDED"
        pipeline["modelToUpload"] = {**wanted, "name": model["name"], "versionId": "1"}
        pipeline["modelId"] = model["name"].rsplit("/", 1)[-1]
        return pipeline

    def _create_endpoint(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._new(parent, "endpoints", body)
        endpoint.setdefault("deployedModels", [])
        endpoint.setdefault("trafficSplit", {})
        return self._operation(parent, _TYPE + "Endpoint", endpoint)

    def _deploy_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._live_endpoint(name)
        if self.fail_deploy is not None:
            message, self.fail_deploy = self.fail_deploy, None
            raise _HttpError(400, "FAILED_PRECONDITION", message)
        model_name = body["deployedModel"]["model"].split("@", 1)[0]
        self._get(model_name)
        deployed = {**body["deployedModel"], "id": str(next(self._ids)), "createTime": _NOW}
        endpoint["deployedModels"].append(deployed)
        split = dict(body.get("trafficSplit") or {"0": 100})
        if "0" in split:
            split[deployed["id"]] = split.pop("0")
        endpoint["trafficSplit"] = split
        return self._operation(name, _TYPE + "DeployModelResponse", {"deployedModel": deployed})

    def _undeploy_model(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._live_endpoint(name)
        wanted = body.get("deployedModelId")
        kept = [d for d in endpoint["deployedModels"] if d["id"] != wanted]
        if len(kept) == len(endpoint["deployedModels"]):
            raise _HttpError(404, "NOT_FOUND", f"deployed model {wanted!r} not on {name!r}")
        endpoint["deployedModels"] = kept
        endpoint["trafficSplit"] = dict(body.get("trafficSplit") or {})
        endpoint["trafficSplit"].pop(wanted, None)
        return self._operation(name, _TYPE + "UndeployModelResponse", {})

    def _predict(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        endpoint = self._live_endpoint(name)
        if not endpoint["deployedModels"]:
            raise _HttpError(400, "FAILED_PRECONDITION", f"endpoint {name!r} has no deployed model")
        deployed = endpoint["deployedModels"][0]
        instances = body.get("instances")
        if not isinstance(instances, list) or not instances:
            raise _HttpError(
                400, "INVALID_ARGUMENT", "predict: 'instances' must be a non-empty list"
            )
        return {
            "predictions": self.predictor(instances),
            "deployedModelId": deployed["id"],
            "model": deployed["model"].split("@", 1)[0],
            "modelVersionId": "1",
        }

    def _live_endpoint(self, name: str) -> dict[str, Any]:
        endpoint = self._get(name)
        if name in self.deleted:
            raise _HttpError(404, "NOT_FOUND", f"endpoint {name!r} was deleted")
        return endpoint

    def _delete(self, name: str) -> dict[str, Any]:
        resource = self._get(name)
        if name in self.deleted:
            raise _HttpError(404, "NOT_FOUND", f"resource {name!r} was already deleted")
        if resource.get("deployedModels"):
            raise _HttpError(
                400,
                "FAILED_PRECONDITION",
                f"endpoint {name!r} still has deployed models; undeploy them first",
            )
        self.deleted.add(name)  # stays readable: the SDK may GET it after deleting
        return self._operation(name, "type.googleapis.com/google.protobuf.Empty", {})

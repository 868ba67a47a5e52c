"""Azure fixtures: Azurite (real Blob Storage API) on 127.0.0.1, and an offline ``MLClient``.

Blob Storage is Azurite from npm (``make`` installs it under ``.cache/node``),
started once per session.  Azure ML's control plane has no emulator, so the
``MLClient`` here is a real one built with a fake credential (it constructs without
network) whose operation methods -- ``jobs.create_or_update``, ``models.create_or_update``,
``online_endpoints.begin_create_or_update`` ... -- are replaced by :class:`AzureML`,
which records each entity (and its ``_to_dict()``) and answers like the service.
The data plane is real: ``online_endpoints.invoke`` is the SDK's own method, with
only its two control-plane lookups (endpoint, keys) answered here, and it POSTs
over HTTP to a local scoring server that runs the deployed scoring script on a
model trained by :func:`mlperf.cloud.run_local`.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from mlperf._optional import require

AZURITE_VERSION = "3.35.0"
AZURITE_HINT = (
    "Azurite is not installed: run `make test` (it installs it) or "
    f"`npm install --prefix .cache/node azurite@{AZURITE_VERSION}`"
)
# Azurite's documented development account (public, not a secret)
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def azurite_binary(root: Path) -> str | None:
    local = root / ".cache" / "node" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


@pytest.fixture(scope="session")
def azurite(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Connection string of an Azurite blob service on 127.0.0.1 and a free port (session)."""
    binary = azurite_binary(pytestconfig.rootpath)
    if binary is None:
        pytest.skip(AZURITE_HINT)
    port = free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    log = (workdir / "azurite.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--silent",
            "--disableTelemetry",  # Azurite reports usage to Application Insights by default
            "--extentMemoryLimit",
            "256",
        ],
        cwd=workdir,  # in-memory persistence; its debug files, if any, land here
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 120  # a guard, not a timing: node starts slowly under load
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = (workdir / "azurite.log").read_text(errors="replace")
                    raise RuntimeError(f"Azurite did not start on port {port}: {err}") from None
                time.sleep(0.1)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def blob_service(azurite: str) -> Any:
    blob = require("azure.storage.blob", "the offline Azure tests")
    return blob.BlobServiceClient.from_connection_string(azurite)


_containers = itertools.count()


@pytest.fixture
def container(blob_service: Any) -> Iterator[str]:
    """A fresh, empty container, removed after the test."""
    name = f"mlperf-{next(_containers)}"
    blob_service.create_container(name)
    yield name
    blob_service.delete_container(name)


# ------------------------------------------------------------------ the control plane


@dataclass
class Submitted:
    """One intercepted call: operation, the entity, its ``_to_dict()``, and its code directory."""

    operation: str
    entity: Any
    spec: dict[str, Any]
    code: dict[str, bytes] = field(default_factory=dict)


class _Poller:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self._fn = fn

    def result(self, timeout: float | None = None) -> Any:
        return self._fn()


def _snapshot(code: Any) -> dict[str, bytes]:
    """The files of a code directory at submission time (mlperf deletes its staging dir after)."""
    if not code or not Path(str(code)).is_dir():
        return {}
    return {p.name: p.read_bytes() for p in Path(str(code)).iterdir() if p.is_file()}


@dataclass
class AzureML:
    """The Azure ML service, as far as the flow needs it, behind a real ``MLClient``.

    Set ``fail_job`` to make the next streamed job fail with that error, and
    ``fail_deployment`` to make the next deployment's LRO fail.
    """

    client: Any
    calls: list[Submitted] = field(default_factory=list)
    jobs: dict[str, Any] = field(default_factory=dict)
    endpoints: dict[str, Any] = field(default_factory=dict)
    deployments: dict[tuple[str, str], Submitted] = field(default_factory=dict)
    fail_job: str | None = None
    fail_deployment: str | None = None
    scoring_uri: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def of(self, operation: str) -> list[Submitted]:
        return [c for c in self.calls if c.operation == operation]

    def _record(self, operation: str, entity: Any, code: Any = None) -> Submitted:
        call = Submitted(operation, entity, entity._to_dict(), _snapshot(code))
        self.calls.append(call)
        return call

    # jobs
    def job_create(self, job: Any, **_: Any) -> Any:
        code = getattr(job, "code", None) or getattr(getattr(job, "trial", None), "code", None)
        self._record("jobs.create_or_update", job, code)
        job.name = f"mlperf_job_{next(self._ids)}"
        job._status = "Running"
        self.jobs[job.name] = job
        return job

    def job_stream(self, name: str) -> None:
        self.calls.append(Submitted("jobs.stream", name, {}))
        job = self.jobs[name]
        if self.fail_job is not None:
            exceptions = require("azure.ai.ml.exceptions")
            message, self.fail_job = self.fail_job, None
            job._status = "Failed"
            # the exception the SDK's log streamer raises for a failed run
            raise exceptions.JobException(
                message=f"Exception : \n {json.dumps({'message': message}, indent=4)} ",
                no_personal_data_message="Exception raised on failed job.",
                target=exceptions.ErrorTarget.JOB,
                error_category=exceptions.ErrorCategory.SYSTEM_ERROR,
            )
        job._status = "Completed"
        if job.type == "sweep":
            job.properties["best_child_run_id"] = f"{name}_3"

    def job_get(self, name: str, **_: Any) -> Any:
        if name not in self.jobs:
            errors = require("azure.core.exceptions")
            raise errors.ResourceNotFoundError(f"job {name!r} not found")
        return self.jobs[name]

    # assets
    def data_create(self, data: Any, **_: Any) -> Any:
        self._record("data.create_or_update", data)
        data.version = "1"
        return data

    def model_create(self, model: Any, **_: Any) -> Any:
        self._record("models.create_or_update", model)
        model.version = "1"
        return model

    # endpoints
    def endpoint_create(self, endpoint: Any, **_: Any) -> _Poller:
        self._record("online_endpoints.begin_create_or_update", endpoint)
        self.endpoints[endpoint.name] = endpoint
        return _Poller(lambda: endpoint)

    def deployment_create(self, deployment: Any, **_: Any) -> _Poller:
        code = deployment.code_configuration.code if deployment.code_configuration else None
        call = self._record("online_deployments.begin_create_or_update", deployment, code)
        self.deployments[(deployment.endpoint_name, deployment.name)] = (
            call  # exists, even if it fails
        )
        if self.fail_deployment is not None:
            errors = require("azure.core.exceptions")
            message, self.fail_deployment = self.fail_deployment, None

            def fail() -> Any:
                raise errors.HttpResponseError(message=message)

            return _Poller(fail)
        return _Poller(lambda: deployment)

    def endpoint_delete(self, name: str | None = None, **_: Any) -> _Poller:
        self.calls.append(Submitted("online_endpoints.begin_delete", name, {}))
        if name not in self.endpoints:
            errors = require("azure.core.exceptions")
            raise errors.ResourceNotFoundError(f"endpoint {name!r} not found")
        del self.endpoints[name]
        for key in [k for k in self.deployments if k[0] == name]:
            del self.deployments[key]
        return _Poller(lambda: None)

    # what the real invoke() asks the control plane before it POSTs to the scoring URI
    def endpoint_lookup(self, endpoint_name: str, **_: Any) -> Any:
        if endpoint_name not in self.endpoints:
            errors = require("azure.core.exceptions")
            raise errors.ResourceNotFoundError(f"endpoint {endpoint_name!r} not found")
        auth = self.endpoints[endpoint_name].auth_mode
        return SimpleNamespace(
            properties=SimpleNamespace(auth_mode=auth, scoring_uri=self.scoring_uri)
        )

    def endpoint_keys(self, name: str, auth_mode: str | None = None) -> Any:
        ml = require("azure.ai.ml", "the offline Azure tests")
        return ml.entities.EndpointAuthKeys(primary_key="test-primary-key", secondary_key="k2")

    def install(self, mp: pytest.MonkeyPatch) -> None:
        c = self.client
        mp.setattr(c.jobs, "create_or_update", self.job_create)
        mp.setattr(c.jobs, "stream", self.job_stream)
        mp.setattr(c.jobs, "get", self.job_get)
        mp.setattr(c.data, "create_or_update", self.data_create)
        mp.setattr(c.models, "create_or_update", self.model_create)
        mp.setattr(c.online_endpoints, "begin_create_or_update", self.endpoint_create)
        mp.setattr(c.online_endpoints, "begin_delete", self.endpoint_delete)
        mp.setattr(c.online_deployments, "begin_create_or_update", self.deployment_create)
        mp.setattr(c.online_endpoints._online_operation, "get", self.endpoint_lookup)
        mp.setattr(c.online_endpoints, "_get_online_credentials", self.endpoint_keys)


class _Credential:
    """A token credential that never talks to Entra ID."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        credentials = require("azure.core.credentials")
        return credentials.AccessToken("offline-token", int(time.time()) + 3600)


@pytest.fixture
def offline_credential() -> _Credential:
    return _Credential()


@pytest.fixture
def dead_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def azure_ml(monkeypatch: pytest.MonkeyPatch) -> AzureML:
    """A real ``MLClient`` (fake credential, no telemetry) on the :class:`AzureML` control plane."""
    ml = require("azure.ai.ml", "the offline Azure tests")
    client = ml.MLClient(
        _Credential(), SUBSCRIPTION, "mlperf-rg", "mlperf-ws", enable_telemetry=False
    )
    fake = AzureML(client)
    fake.install(monkeypatch)
    return fake


# ------------------------------------------------------------------ the data plane


@dataclass
class ScoringServer:
    """A local stand-in for a managed endpoint's inference server: POST body -> ``run(body)``."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    module: Any = None
    _server: ThreadingHTTPServer | None = None

    def load(
        self,
        files: dict[str, bytes],
        entry: str,
        model_dir: Path,
        tmp: Path,
        mp: pytest.MonkeyPatch,
    ) -> None:
        """Load the deployed scoring script (its code dir's snapshot) and call its ``init()``."""
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        spec = importlib.util.spec_from_file_location("mlperf_scoring_under_test", tmp / entry)
        assert spec and spec.loader
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)
        mp.setenv("AZUREML_MODEL_DIR", str(model_dir))
        self.module.init()

    def start(self) -> str:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                server.requests.append(json.loads(body))
                server.headers.append(dict(self.headers))
                try:
                    status, reply = 200, json.dumps(server.module.run(body))
                except Exception as exc:  # noqa: BLE001 -- the inference server answers 500 too
                    status, reply = 500, json.dumps({"error": {"message": str(exc)}})
                data = reply.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/score"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def scoring_server() -> Iterator[ScoringServer]:
    server = ScoringServer()
    yield server
    server.stop()


# ------------------------------------------------------------------ data


# make_frame and train_frame (the tutorial's data) come from suites/cloud/conftest.py


@dataclass
class JobRun:
    """The training job mlperf submits, and what its command line did when run locally."""

    call: Submitted
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    model_dir: Path

    @property
    def model_path(self) -> Path:
        return self.model_dir / "model.joblib"


def run_job_command(call: Submitted, data_csv: Path, workdir: Path) -> JobRun:
    """Run a submitted command job the way Azure would: its code dir as cwd, ${{...}} filled in.

    Inputs become their values (the data input the local CSV), the model output a
    local directory; the command's ``python`` is this interpreter.
    """
    for name, data in call.code.items():
        (workdir / name).write_bytes(data)
    model_dir = workdir / "outputs" / "model"
    values = {"inputs.data": str(data_csv), "outputs.model": str(model_dir)}
    values.update({f"inputs.{k}": str(v) for k, v in call.spec["inputs"].items() if k != "data"})
    command = call.spec["component"]["command"]
    argv = re.sub(r"\$\{\{([\w.]+)\}\}", lambda m: values[m.group(1)], command).split()
    if argv[0] != "python":
        raise AssertionError(f"the job's command does not start with python: {command!r}")
    proc = subprocess.run(
        [sys.executable, *argv[1:]], cwd=workdir, capture_output=True, text=True, check=False
    )
    return JobRun(call, argv, proc.returncode, proc.stdout, proc.stderr, model_dir)


def new_client() -> Any:
    ml = require("azure.ai.ml", "the offline Azure tests")
    return ml.MLClient(
        _Credential(), SUBSCRIPTION, "mlperf-rg", "mlperf-ws", enable_telemetry=False
    )


@pytest.fixture(scope="session")
def job_run(train_frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> JobRun:
    """mlperf's training job (50 trees, depth 5), submitted offline and its command run here.

    The model it writes is the one the serving tests deploy: what the job would produce.
    """
    from mlperf.cloud.azure import train

    workdir = tmp_path_factory.mktemp("azure-job")
    with pytest.MonkeyPatch.context() as mp:
        fake = AzureML(new_client())
        fake.install(mp)
        train(
            "azureml:mlperf-train:1",
            hyperparameters={"n_estimators": 50, "max_depth": 5},
            ml_client=fake.client,
        )
    (call,) = fake.of("jobs.create_or_update")
    train_frame.to_csv(workdir / "train.csv", index=False)
    return run_job_command(call, workdir / "train.csv", workdir)

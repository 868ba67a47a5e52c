"""Starting the loopback cluster: each service in its own process group, then waiting
(bounded) until it accepts connections; :func:`up` writes ``cluster.env``."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mlperf.distributed.cluster.groups import TOKEN_FILE, _alive, _pid_files, down

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["up"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spark_home() -> Path:
    from mlperf._optional import require

    return Path(str(require("pyspark", "the Spark Connect server").__file__)).parent


def _open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _start(
    name: str, cmd: list[str], directory: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        # Own session = own process group: `down` can stop the service and everything
        # it spawned with one killpg, touching nothing else on the host.
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    (directory / f"{name}.pid").write_text(json.dumps({"pid": proc.pid, "cmd": cmd[:3]}))
    return proc


def _tail(directory: Path, name: str, lines: int = 15) -> str:
    log = directory / "logs" / f"{name}.log"
    text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return "\n".join(f"    {line}" for line in text)


def up(directory: str | os.PathLike[str], *, timeout: float = 180.0) -> dict[str, str]:
    """Start the loopback cluster; return the variables written to ``DIR/cluster.env``.

    Raises
    ------
    RuntimeError
        A service of an earlier ``up`` in *directory* still runs, or a service exited
        or did not accept connections within *timeout* seconds (everything started is
        stopped again; the message holds the end of its log).
    """
    from mlperf.distributed.ray import _ray_temp

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if any(_alive(f) for f in _pid_files(directory)):
        raise RuntimeError(
            f"cluster up: services of an earlier run in {str(directory)!r} still run; "
            f"stop them with: python -m mlperf.distributed.cluster down --dir {directory}"
        )
    tmp = directory / "tmp"
    for sub in ("dask", "spark"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    ports = {
        name: _free_port()
        for name in ("dask", "spark", "ray", "ray_client", "ray_agent", "ray_dash")
    }
    spark_home = _spark_home()
    token = _write_token(directory / TOKEN_FILE)
    env = {
        **os.environ,
        # Ray runs whatever a connected driver submits: only holders of the token connect.
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray replaces 127.0.0.1 by the host's outward address unless it believes it
        # runs a single-node cluster; with it, every Ray endpoint binds 127.0.0.1 only.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LAUNCHER_OPTS": "-XX:-UsePerfData",
        "SPARK_HOME": str(spark_home),
        "SPARK_LOG_DIR": str(directory / "logs"),
        "SPARK_PID_DIR": str(directory),
        "DASK_TEMPORARY_DIRECTORY": str(tmp / "dask"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for var in ("SPARK_REMOTE", "DASK_SCHEDULER_ADDRESS", "RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(var, None)  # a token in the environment would win over the token file
    dask_addr = f"tcp://127.0.0.1:{ports['dask']}"
    commands = {
        "dask-scheduler": [
            str(bin_dir / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["dask"]),
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
        ],
        "dask-worker": [
            str(bin_dir / "dask"),
            "worker",
            dask_addr,
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            "--local-directory",
            str(tmp / "dask"),
        ],
        "spark-connect": [
            str(spark_home / "sbin" / "start-connect-server.sh"),
            "--wait",
            "--master",
            "local[2]",
            "--driver-memory",
            "2g",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            f"spark.connect.grpc.binding.port={ports['spark']}",
            "--conf",
            f"spark.local.dir={tmp / 'spark'}",
            "--conf",
            f"spark.driver.extraJavaOptions=-Djava.io.tmpdir={tmp / 'spark'} -XX:-UsePerfData",
            "--conf",
            f"spark.sql.warehouse.dir={tmp / 'spark' / 'warehouse'}",
            "--conf",
            "spark.sql.adaptive.enabled=true",
            "--conf",
            "spark.ui.enabled=false",
        ],
        "ray-head": [
            str(bin_dir / "ray"),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(ports["ray"]),
            "--num-cpus",
            "2",
            "--disable-usage-stats",
            "--include-dashboard",
            "false",
            "--temp-dir",
            _ray_temp(tmp),
            "--ray-client-server-port",
            str(ports["ray_client"]),
            "--dashboard-agent-listen-port",
            str(ports["ray_agent"]),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(ports["ray_dash"]),
        ],
    }
    procs = {}
    try:
        procs["dask-scheduler"] = _start(
            "dask-scheduler", commands["dask-scheduler"], directory, env
        )
        procs["spark-connect"] = _start("spark-connect", commands["spark-connect"], directory, env)
        procs["ray-head"] = _start("ray-head", commands["ray-head"], directory, env)
        _wait(directory, procs, {"dask-scheduler": ports["dask"]}, timeout)
        procs["dask-worker"] = _start("dask-worker", commands["dask-worker"], directory, env)
        _wait(
            directory, procs, {"spark-connect": ports["spark"], "ray-head": ports["ray"]}, timeout
        )
        _wait_workers(directory, dask_addr, procs, timeout)
        _wait_log(directory, "ray-head", "Ray runtime started", procs, timeout)
    except BaseException:
        down(directory)
        raise
    variables = {
        "SPARK_REMOTE": f"sc://127.0.0.1:{ports['spark']}",
        "DASK_SCHEDULER_ADDRESS": dask_addr,
        "RAY_ADDRESS": f"127.0.0.1:{ports['ray']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "MLPERF_CLUSTER_DIR": str(directory),
    }
    lines = [f"export {k}={shlex.quote(v)}" for k, v in variables.items()]
    (directory / "cluster.env").write_text("\n".join(lines) + "\n")
    return variables


def _write_token(path: Path) -> Path:
    """A fresh random Ray token in *path*, readable by its owner only."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    return path


def _check_alive(directory: Path, procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for name, proc in procs.items():
        if proc.poll() is not None:
            raise RuntimeError(
                f"cluster up: {name} exited with status {proc.returncode}; the end of "
                f"{directory / 'logs' / (name + '.log')}:\n{_tail(directory, name)}"
            )


def _wait(
    directory: Path,
    procs: dict[str, subprocess.Popen[bytes]],
    ports: dict[str, int],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(ports)
    while pending:
        _check_alive(directory, procs)
        pending = {n: p for n, p in pending.items() if not _open(p)}
        if pending and time.monotonic() > deadline:
            name, port = next(iter(pending.items()))
            raise RuntimeError(
                f"cluster up: {name} did not accept connections on 127.0.0.1:{port} within "
                f"{timeout:.0f} s; the end of its log:\n{_tail(directory, name)}"
            )
        if pending:
            time.sleep(0.25)


def _wait_workers(
    directory: Path, address: str, procs: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    from mlperf._optional import require

    distributed = require("distributed", "the Dask cluster")
    with distributed.Client(address, timeout="30s") as client:
        _wait_until(
            lambda: len(client.scheduler_info(n_workers=-1)["workers"]) >= 2,
            f"2 Dask workers did not join {address}",
            "dask-worker",
            directory,
            procs,
            timeout,
        )


def _wait_log(
    directory: Path, name: str, text: str, procs: dict[str, subprocess.Popen[bytes]], timeout: float
) -> None:
    log = directory / "logs" / f"{name}.log"
    _wait_until(
        lambda: text in log.read_text(errors="replace"),
        f"{name} did not report {text!r}",
        name,
        directory,
        procs,
        timeout,
    )


def _wait_until(
    done: Callable[[], bool],
    what: str,
    log_name: str,
    directory: Path,
    procs: dict[str, subprocess.Popen[bytes]],
    timeout: float,
) -> None:
    """Poll *done* until it holds; fail with *what* and the log's tail if a process dies
    or *timeout* seconds pass."""
    deadline = time.monotonic() + timeout
    while not done():
        _check_alive(directory, procs)
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"cluster up: {what} within {timeout:.0f} s;\n{_tail(directory, log_name)}"
            )
        time.sleep(0.25)

"""A real Dask, Spark Connect and Ray cluster on 127.0.0.1, for the ``cluster`` tests.

``python -m mlperf.distributed.cluster up --dir DIR`` starts a Dask scheduler with
one ``dask worker --nworkers 2 --nthreads 1``, a Spark Connect server
(``$SPARK_HOME/sbin/start-connect-server.sh --wait``, SPARK_HOME found from the
pyspark package) and a Ray head (``ray start --head --block`` with token
authentication, its token in ``DIR/ray-auth-token``, mode 0600), each on a free
loopback port, listening on 127.0.0.1 only, and in its own process group; waits
(bounded) until each accepts connections; and writes ``DIR/cluster.env`` (``export``
lines for SPARK_REMOTE, DASK_SCHEDULER_ADDRESS, RAY_ADDRESS, RAY_AUTH_MODE,
RAY_AUTH_TOKEN_PATH and MLPERF_CLUSTER_DIR; never the token itself) and one PID file
per service.  ``down --dir DIR`` stops exactly those process groups (never
``ray stop``, which kills every Ray process on the host).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["down", "main", "processes", "up"]

SERVICES = ("dask-scheduler", "dask-worker", "spark-connect", "ray-head")
#: the Ray head's token, in the cluster's folder
TOKEN_FILE = "ray-auth-token"


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


def _pid_files(directory: Path) -> list[Path]:
    return [directory / f"{name}.pid" for name in SERVICES if (directory / f"{name}.pid").exists()]


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


def processes(directory: str | os.PathLike[str]) -> dict[str, list[Any]]:
    """The live processes of each service ``up`` started in *directory* (its process
    group: the service and everything it spawned), as psutil processes."""
    import psutil

    groups = {}
    for pid_file in _pid_files(Path(directory).resolve()):
        with contextlib.suppress(OSError, ValueError, KeyError):
            groups[int(json.loads(pid_file.read_text())["pid"])] = pid_file.stem
    found: dict[str, list[Any]] = {name: [] for name in groups.values()}
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            pgid = os.getpgid(proc.pid)
            if pgid in groups:
                found[groups[pgid]].append(proc)
    return found


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(json.loads(pid_file.read_text())["pid"])
        os.killpg(pid, 0)
    except (OSError, ValueError, KeyError):
        return False
    return True


def down(directory: str | os.PathLike[str], *, grace: float = 10.0) -> list[str]:
    """Stop the services that ``up`` started in *directory*; return the names stopped.

    Each service's process group gets SIGTERM, then SIGKILL after *grace* seconds
    (a Ray head drains for up to 30 s on SIGTERM; a test cluster need not wait).
    Only the groups recorded in the PID files are signalled.
    """
    directory = Path(directory).resolve()
    stopped = []
    groups = {}
    for pid_file in _pid_files(directory):
        try:
            groups[pid_file] = int(json.loads(pid_file.read_text())["pid"])
        except (ValueError, KeyError):
            pid_file.unlink()
    for pid_file, pgid in groups.items():
        try:
            os.killpg(pgid, signal.SIGTERM)
            stopped.append(pid_file.stem)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid_file, pgid in groups.items():
        while _reap(pgid) and _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
            print(
                f"cluster down: {pid_file.stem} still ran {grace:.0f} s after SIGTERM; killed",
                file=sys.stderr,
            )
            _reap(pgid)
        pid_file.unlink(missing_ok=True)
    (directory / "cluster.env").unlink(missing_ok=True)
    (directory / TOKEN_FILE).unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> bool:
    """Collect *pid* if it is our exited child (``up`` and ``down`` in one process), so
    that it does not linger as a zombie that still counts as alive; always True."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlperf.distributed.cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        help="folder for cluster.env, PID files, logs, temp files",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for each service (default 180)",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            t0 = time.perf_counter()
            variables = up(args.dir, timeout=args.timeout)
            print(
                f"cluster up in {time.perf_counter() - t0:.1f} s: "
                + ", ".join(
                    f"{k}={v}"
                    for k, v in variables.items()
                    if k in ("SPARK_REMOTE", "DASK_SCHEDULER_ADDRESS", "RAY_ADDRESS")
                )
            )
        else:
            print(
                "cluster down: stopped " + (", ".join(down(args.dir)) or "nothing (no PID files)")
            )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

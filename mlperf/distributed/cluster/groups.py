"""The services' PID files and process groups: :func:`processes` finds what each
service runs, :func:`down` stops exactly those groups (never ``ray stop``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["SERVICES", "TOKEN_FILE", "down", "processes"]

SERVICES = ("dask-scheduler", "dask-worker", "spark-connect", "ray-head")
#: the Ray head's token, in the cluster's folder
TOKEN_FILE = "ray-auth-token"


def _pid_files(directory: Path) -> list[Path]:
    return [directory / f"{name}.pid" for name in SERVICES if (directory / f"{name}.pid").exists()]


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

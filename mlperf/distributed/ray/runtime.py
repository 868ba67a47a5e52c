"""Ray's start-up: :func:`ray_runtime`, a local Ray or an attached cluster.

``ray_runtime()`` starts a local Ray unless ``RAY_ADDRESS`` (or ``address=``) names a
running cluster; the job functions run unchanged on either.  A local Ray listens on
127.0.0.1 only and requires a token (Ray's token authentication, a random token per
process): Ray runs whatever a connected driver submits, so nothing else may connect.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from mlperf._optional import require
from mlperf.distributed.common import tmp_root
from mlperf.distributed.network import (
    HTTP2_HELLO,
    ensure_reachable,
    exposed_listeners,
    process_tree,
    refuse_exposed,
    shown,
)

__all__ = ["ray_runtime"]

# Ray puts Unix sockets under its temp dir: <dir>/session_<date>_<pid>/sockets/plasma_store
# must fit AF_UNIX's 107 bytes; the session part takes ~64 of them.
_SOCKET_BUDGET = 107 - 64


def _ray_temp(tmp: str | os.PathLike[str] | None) -> str:
    path = tmp_root("ray", tmp)
    if len(str(path)) <= _SOCKET_BUDGET:
        return str(path)
    # Too long for Ray's sockets: a short link in the system temp dir points into the
    # root, so the files themselves still live under it.
    import hashlib
    import tempfile

    link = (
        Path(tempfile.gettempdir())
        / f"mlperf-ray-{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    )
    if not link.is_symlink() or link.resolve() != path:
        link.unlink(missing_ok=True)
        link.symlink_to(path, target_is_directory=True)
    return str(link)


#: the token of the local Rays this process starts: one per process, since Ray's token
#: loader keeps the first token it reads for the life of the process
_TOKEN: list[str] = []
#: the variables :func:`_local_ray_settings` sets (and restores on exit)
_LOCAL_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


@contextmanager
def _local_ray_settings() -> Iterator[None]:
    """Loopback only and token authentication on, for a local Ray this process starts.

    Ray binds its gRPC servers (GCS, raylet, workers) to every interface unless its
    node address is 127.0.0.1, and it takes the host's outward address unless it
    believes it runs a single-node cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``).
    Ray reads that switch when it is imported, so this process's copy is set too; the
    processes Ray starts read it from the environment.  Token mode is forced (an
    inherited ``RAY_AUTH_MODE=disabled`` would let any local user's driver in) with
    the user's ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` if set, else a random one.
    """
    constants: Any = require("ray._private.ray_constants", "Ray")
    raylet: Any = require("ray._raylet", "Ray")
    saved_env = {name: os.environ.get(name) for name in _LOCAL_ENV}
    saved_switch = constants.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_AUTH_MODE"] = "token"
    if not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        if not _TOKEN:
            _TOKEN.append(secrets.token_hex(32))
        os.environ["RAY_AUTH_TOKEN"] = _TOKEN[0]
    constants.ENABLE_RAY_CLUSTER = False
    if raylet.get_authentication_mode() != raylet.AuthenticationMode.TOKEN:
        raylet.Config.initialize("")  # this process read RAY_AUTH_MODE before: read it again
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_switch
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def ray_runtime(
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    tmp: str | os.PathLike[str] | None = None,
) -> Iterator[ModuleType]:
    """Ray, initialised for the block and shut down on exit; yields the ``ray`` module.

    A local Ray listens on 127.0.0.1 only and requires a token whatever
    ``RAY_AUTH_MODE`` says (``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` if set, else a
    random token of this process); the environment is given back on exit.  A cluster
    is reached with the token its ``RAY_AUTH_TOKEN`` / ``RAY_AUTH_TOKEN_PATH`` name
    (``python -m mlperf.distributed.cluster up`` exports them).

    Parameters
    ----------
    address:
        Cluster address (``host:port`` of the head's GCS, or ``ray://host:10001``);
        default ``$RAY_ADDRESS``; none: a local Ray with *num_cpus* CPUs.
    num_cpus:
        Local Ray only; default all cores.
    tmp:
        Root of temporary files (default :func:`~mlperf.distributed.common.tmp_root`);
        a local Ray's session dir goes to ``<tmp>/ray``.

    Raises
    ------
    ConnectionError
        The head does not answer within ``$MLPERF_CONNECT_TIMEOUT`` seconds (default
        5), or Ray cannot attach to it; the message names the address.
    RuntimeError
        Ray is already initialised in this process, or a local Ray listened beyond
        127.0.0.1 (it is shut down again).
    """
    func = "ray_runtime"
    ray = require("ray", "Ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network here, and no need
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
    remote = bool(address) and address not in ("local", "auto")
    fix = "start it (python -m mlperf.distributed.cluster up) or unset RAY_ADDRESS"
    if remote:
        assert address is not None
        # Ray's GCS and its Ray Client server are gRPC servers: they answer HTTP/2's hello.
        default_port = 10001 if address.startswith("ray://") else 6379
        ensure_reachable(
            address, default_port, func=func, what="Ray head", fix=fix, hello=HTTP2_HELLO
        )
    if ray.is_initialized():
        raise RuntimeError(
            f"{func}: Ray is already initialised in this process; call ray.shutdown() first"
        )
    with contextlib.ExitStack() as stack:
        if remote:
            _attach(ray, str(address), func, fix, quiet)
        elif address == "auto":
            ray.init(address="auto", **quiet)
        else:
            stack.enter_context(_local_ray_settings())
            before = exposed_listeners(process_tree())
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count(),
                include_dashboard=False,
                _temp_dir=_ray_temp(tmp),
                **quiet,
            )
            try:
                refuse_exposed(func, "Ray", before)
            except RuntimeError:
                ray.shutdown()
                raise
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # Ray Data's own defaults touch its deprecated settings when the context is made.
            warnings.filterwarnings(
                "ignore", category=DeprecationWarning, module="ray.data.context"
            )
            ctx = require("ray.data", "Ray Data").DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        try:
            yield ray
        finally:
            ray.shutdown()


def _attach(ray: Any, address: str, func: str, fix: str, quiet: dict[str, Any]) -> None:
    """``ray.init(address)``, failing with a sentence that names the address.

    Ray Client (``ray://``) retries for 30 s and then says only that the connection
    timed out; the GCS path says "Failed to connect" after 20 s.  The probe before
    has already ruled out a dead or silent port, so what is left is a server that is
    not a Ray head of this version, or a head that refuses this driver's token.
    """
    try:
        ray.init(address=address, **quiet)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, AuthenticationError, grpc errors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConnectionError(
            f"{func}: could not attach to the Ray head at {shown(address)!r} ({shown(reason)}); "
            "a cluster with token authentication needs its token in RAY_AUTH_TOKEN or "
            f"RAY_AUTH_TOKEN_PATH; or {fix}"
        ) from None


def _running(func: str) -> Any:
    ray = require("ray", "Ray jobs")
    if not ray.is_initialized():
        raise RuntimeError(f"{func}: Ray is not running; call it inside `with ray_runtime():`")
    return ray

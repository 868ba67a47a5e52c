"""Engine addresses and the servers mlperf starts: parse and probe an address, and
check that a process tree listens on loopback only.

Only the standard library and psutil (a core dependency) are imported here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from typing import Any, NamedTuple

__all__ = [
    "HTTP2_HELLO",
    "Listener",
    "connect_timeout",
    "ensure_reachable",
    "exposed_listeners",
    "listening_sockets",
    "parse_address",
    "process_tree",
    "refuse_exposed",
    "shown",
]


def shown(address: str) -> str:
    """*address* as messages show it: a Spark Connect ``;token=...`` parameter (or any
    other credential in it) replaced by ``[REDACTED]``."""
    from mlperf.cloud.common import redact  # standard library only

    return redact(address)


def parse_address(address: str, default_port: int, *, func: str) -> tuple[str, int]:
    """``(host, port)`` of ``sc://h:p/;opts``, ``tcp://h:p``, ``ray://h:p``, ``h:p`` or ``h``."""
    rest = address.strip().split("://", 1)[-1].split("/", 1)[0].split(";", 1)[0]
    if rest.startswith("["):  # [::1]:port
        host, _, port_s = rest[1:].partition("]")
        port_s = port_s.lstrip(":")
    else:
        host, _, port_s = rest.rpartition(":") if ":" in rest else (rest, "", "")
    if not host:
        raise ValueError(f"{func}: cannot find a host in address {shown(address)!r}; use host:port")
    try:
        port = int(port_s) if port_s else default_port
    except ValueError:
        raise ValueError(
            f"{func}: port in address {shown(address)!r} is not a number; use host:port"
        ) from None
    return host, port


#: what an HTTP/2 client sends first (RFC 9113 3.4): the preface and an empty SETTINGS
#: frame.  Every gRPC server (Spark Connect, Ray's GCS and Ray Client) answers it with
#: its own SETTINGS frame, so a silent port is told from a server without a gRPC call.
HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def connect_timeout() -> float:
    """Seconds an engine address gets to answer: ``$MLPERF_CONNECT_TIMEOUT`` or 5."""
    return float(os.environ.get("MLPERF_CONNECT_TIMEOUT", "5"))


def ensure_reachable(
    address: str,
    default_port: int,
    *,
    func: str,
    what: str,
    fix: str,
    timeout: float | None = None,
    greeting: bool = False,
    hello: bytes | None = None,
) -> None:
    """Raise :class:`ConnectionError` unless the server at *address* answers in time.

    Engine clients retry for minutes against a dead address, and hang on a port that
    accepts but never answers; this probe makes either fail in ``timeout`` seconds
    (default :func:`connect_timeout`) with a message that names the address.

    Parameters
    ----------
    greeting:
        The server speaks first (Dask's scheduler): it must send a byte in time.
    hello:
        Bytes to send first (:data:`HTTP2_HELLO` for gRPC servers); the server must
        answer with a byte in time.
    """
    host, port = parse_address(address, default_port, func=func)
    if timeout is None:
        timeout = connect_timeout()
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectionError(
            f"{func}: cannot reach the {what} at {shown(address)!r} ({host}:{port}: "
            f"{exc or 'timed out'}); {fix}"
        ) from None
    with sock:
        if not greeting and hello is None:
            return
        # A port that accepts and stays silent would hang the engine's client.
        try:
            sock.settimeout(timeout)
            if hello is not None:
                sock.sendall(hello)
            answered = bool(sock.recv(1))
        except OSError:
            answered = False
        if not answered:
            raise ConnectionError(
                f"{func}: {shown(address)!r} accepts connections but did not answer as a {what} "
                f"within {timeout:g} s: is it really a {what}? {fix}"
            )


# ------------------------------------------------------------- loopback-only servers


def process_tree(pid: int | None = None) -> list[Any]:
    """The process *pid* (default this one) and all its descendants, as psutil processes."""
    import psutil

    root = psutil.Process(pid)
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return [root]


def _is_loopback(ip: str) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


class Listener(NamedTuple):
    """One listening TCP socket: the process's name and pid, the bound address and port."""

    name: str
    pid: int
    ip: str
    port: int

    @property
    def loopback(self) -> bool:
        return _is_loopback(self.ip)

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid}) on {self.ip}:{self.port}"


def listening_sockets(processes: Iterable[Any]) -> list[Listener]:
    """Every listening TCP socket of *processes* (psutil processes); a process that
    ended or cannot be inspected is skipped."""
    import psutil

    found = []
    for proc in processes:
        try:
            name = proc.name()
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        found += [
            Listener(name, proc.pid, c.laddr.ip, c.laddr.port)
            for c in conns
            if c.status == psutil.CONN_LISTEN
        ]
    return found


def exposed_listeners(processes: Iterable[Any]) -> list[str]:
    """Listening TCP sockets of *processes* on any address but loopback.

    ``0.0.0.0``, ``::`` and the host's own addresses count as exposed; ``127.0.0.0/8``,
    ``::1`` and ``::ffff:127.0.0.1`` do not.

    Returns
    -------
    list of str
        ``"<name> (pid N) on <ip>:<port>"``, one per exposed socket.
    """
    return [str(sock) for sock in listening_sockets(processes) if not sock.loopback]


def refuse_exposed(func: str, what: str, before: Iterable[str] = ()) -> None:
    """Raise RuntimeError if this process tree listens beyond loopback (sockets in
    *before*, found before the engine started, are not the engine's and are ignored).

    Every server mlperf starts binds 127.0.0.1 only: anything reachable from outside
    could be sent work (Ray and Dask run whatever a client submits).
    """
    exposed = [s for s in exposed_listeners(process_tree()) if s not in set(before)]
    if exposed:
        raise RuntimeError(
            f"{func}: the local {what} listens beyond loopback: {exposed!r}; anyone who can "
            "reach this host could send it work, so it was stopped.  This is a bug in mlperf "
            "or a change in the engine: report it with the engine's version"
        )

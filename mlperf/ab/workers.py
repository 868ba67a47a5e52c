"""The coordinator's end of the A/B worker processes: environment, launch, pipes.

:func:`_start_pair` starts the two workers of a process pair, one pytest session per
side (``_mlperf_ab_worker.py`` is the other end), so that they differ in nothing but
their code; a :class:`_Worker` sends its worker commands and reads its replies, one
JSON line each, and stops the run when the worker imported the project's code from
outside its side.  What the workers are asked to do, and when, is
:mod:`mlperf.ab.runner`.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from mlperf._standalone import SESSION_ENV, standalone_dir
from mlperf.ab.types import AbError, Settings, Side

__all__ = ["THREAD_PINS"]


#: thread-pool sizes pinned to 1 in every worker: both sides measure single-threaded work
THREAD_PINS = dict.fromkeys(
    (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "POLARS_MAX_THREADS",
    ),
    "1",
)
_DROP_ENV = (*SESSION_ENV, "PYTHONHASHSEED")  # each pair gets its own seed
_ADDR_NO_RANDOMIZE = 0x0040000  # personality(2) flag, as `setarch -R` sets it


def _no_aslr() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Turn off address-space randomisation for the worker (and only for it)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        current = libc.personality(0xFFFFFFFF)
        if current != -1:
            libc.personality(current | _ADDR_NO_RANDOMIZE)
    except (OSError, AttributeError):  # no personality(2) here: the worker keeps ASLR
        pass


def _stack_bytes(args: list[str], env: dict[str, str]) -> int:
    """Bytes the kernel copies onto a new process's stack for *args* and *env*."""
    return sum(len(a.encode()) + 1 for a in args) + sum(
        len(k.encode()) + len(v.encode()) + 2 for k, v in env.items()
    )


class _Worker:
    """One pytest session in one checkout, driven over two pipes."""

    def __init__(self, side: Side, settings: Settings, hash_seed: int, log: Path) -> None:
        plugin_dir = standalone_dir(settings.work_dir / "plugin")
        self._cmd_r, self._cmd_w = os.pipe()
        self._res_r, self._res_w = os.pipe()
        env = {k: v for k, v in os.environ.items() if k not in _DROP_ENV}
        env.update(THREAD_PINS)
        env.update(side.env)
        options = {**settings.options, **side.options}
        path = [plugin_dir, *side.code_path, side.root]
        own = {
            "prefixes": side.own,
            "allowed": [str(p) for p in side.allowed],
            "compiled": [str(p) for p in side.compiled],
            "side": side.label,
        }
        env.update(
            PYTHONPATH=os.pathsep.join(str(p) for p in path),
            PYTHONHASHSEED=str(hash_seed),
            # fixed width: the environment has the same size in both workers
            MLPERF_AB_FDS=f"{self._cmd_r:05d},{self._res_w:05d}",
            MLPERF_AB_OPTIONS=json.dumps(options),
            MLPERF_AB_OWN=json.dumps(own),
        )
        # -P: the working directory does not go first on sys.path, so PYTHONPATH decides
        # which revision's code is imported.  No plugin of the user's is switched off
        # (its options in addopts would become errors): the worker sets the few options
        # that would stop it from measuring (see NEUTRAL_OPTIONS in the worker).
        args = [
            side.python,
            "-P",
            "-m",
            "pytest",
            *settings.paths,
            "-p",
            "_mlperf_ab_worker",
            "-q",
            "--no-header",
        ]
        if settings.only:
            args += ["-k", settings.only]
        self.side, self.log, self.args, self.env = side, log, args, env

    def start(self, pad: int, same_layout: bool) -> None:
        """Launch, with *pad* bytes of padding in the environment (moves the stack)."""
        self.env["MLPERF_AB_PAD"] = "x" * pad
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.side.root,
                env=self.env,
                pass_fds=(self._cmd_r, self._res_w),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_no_aslr if same_layout else None,
            )
        os.close(self._cmd_r)
        os.close(self._res_w)
        self._cmd = os.fdopen(self._cmd_w, "w", encoding="utf-8")
        self._res = os.fdopen(self._res_r, "r", encoding="utf-8")

    def receive(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            ready, _, _ = select.select([self._res], [], [], 1.0)
            if ready:
                line = self._res.readline()
                if line:
                    message = dict(json.loads(line))
                    _check_own(self, message)
                    return message
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        self.close()
        tail = self.log.read_text(errors="replace").strip().splitlines()[-15:]
        raise AbError(
            f"mlperf ab: the worker for {self.side.label} stopped answering; "
            f"its log {str(self.log)!r} ends with:\n  " + "\n  ".join(tail)
        )

    def send(self, **command: Any) -> None:
        try:
            self._cmd.write(json.dumps(command) + "\n")
            self._cmd.flush()
        except BrokenPipeError:
            pass  # receive() reports the dead worker with its log

    def request(self, timeout: float, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.receive(timeout)

    def close(self) -> None:
        try:
            self._cmd.write('{"cmd": "quit"}\n')
            self._cmd.close()
        except (BrokenPipeError, ValueError, OSError):
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._res.close()


def _start_pair(
    base: Side, head: Side, settings: Settings, tag: str, cpu: int | None
) -> tuple[_Worker, _Worker]:
    """Start both workers of a pair so that they differ in nothing but their code.

    Same hash seed, same CPU, address-space randomisation off, and environments
    padded to the same size (so both stacks start at the same address).  What
    differs from pair to pair is the seed and a random extra padding: each pair is
    another memory layout, and the verdict averages over them.  With ASLR on, the
    layout luck of two independent processes moved the CPU time of identical
    pure-Python code by up to 16 % between the two workers of a pair; paired
    layouts halve the spread (see ``suites/gate``).
    """
    seed = random.randrange(1, 2**31)
    logs = settings.work_dir / "logs"
    pair = (
        _Worker(base, settings, seed, logs / f"{tag}-base.log"),
        _Worker(head, settings, seed, logs / f"{tag}-head.log"),
    )
    sizes = [_stack_bytes(w.args, w.env) for w in pair]
    extra = random.randrange(0, 4096)
    for w, size in zip(pair, sizes, strict=True):
        w.start(max(sizes) - size + extra, settings.same_layout)
        if cpu is not None:
            try:
                os.sched_setaffinity(w.proc.pid, {cpu})
            except OSError:  # already gone: receive() reports it with its log
                pass
    return pair


def _check_own(worker: _Worker, reply: dict[str, Any]) -> None:
    """Stop the run when the worker imported the project's code from outside its side."""
    foreign = reply.get("foreign") or []
    if not foreign:
        return
    name, path = foreign[0]
    side = worker.side
    where = ", ".join(map(str, side.code_path or side.allowed))
    more = f" (and {len(foreign) - 1} more module(s))" if len(foreign) > 1 else ""
    raise AbError(
        f"mlperf ab: {side.label} imported {name} from {path}{more}, not from its own revision "
        f"({where}); something puts other code first on sys.path (a .pth file, PYTHONPATH, a "
        "conftest.py that edits sys.path, or a package that must be built: try --build always). "
        f"No verdict is given for code a side did not run. Worker log: {worker.log}"
    )

"""The A/B coordinator: pairs of fresh worker processes, rounds interleaved A/B/B/A.

For each process pair it starts one pytest worker per side (see
``_mlperf_ab_worker.py``), both pinned to the same CPU and given the same hash
seed, and then, benchmark by benchmark, asks them for blocks of rounds in the
order A B B A A B B A ...  Within a pair only one worker computes at any moment;
the other waits on its pipe.  Pairs run side by side, one per CPU, so a 2-CPU
machine measures two pairs in the time of one.  Several process pairs spread the
luck of one process's memory layout.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import random
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from mlperf._standalone import standalone_dir
from mlperf.ab.types import AbError, Measurement, Plan, Settings, Side
from mlperf.records import DEFAULT_MAX_MEMORY_REGRESSION as MAX_MEMORY_REGRESSION

__all__ = ["THREAD_PINS", "measure"]

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
_DROP_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
    "PYTEST_CURRENT_TEST",
    "PYTHONHASHSEED",
)
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


def _plan(settings: Settings, call_time: float, iterations: int) -> tuple[int, int]:
    """(blocks per process pair, rounds per block) for one benchmark.

    Blocks are short (``block_time``; by default one round) so that the two blocks of a
    pair share the machine's state; at least 4 per process pair, an even number (A B B A
    cycles).
    """
    round_time = max(call_time * iterations, 1e-9)
    rounds = settings.rounds or min(
        settings.max_rounds, max(settings.min_rounds, math.ceil(settings.max_time / round_time))
    )
    per_pair = math.ceil(rounds / settings.pairs)
    per_block = max(1, min(per_pair // 4, round(settings.block_time / round_time)))
    blocks = max(4, math.ceil(per_pair / per_block))
    return blocks + blocks % 2, per_block


def measure(
    base: Side,
    head: Side,
    settings: Settings,
    ids: list[str] | None = None,
    *,
    scale: float = 1.0,
    on_collect: Any = None,
    tag: str = "m",
    plans: dict[str, Plan] | None = None,
    on_measured: Callable[[Measurement, bool], None] | None = None,
) -> list[Measurement]:
    """Measure *ids* (default: every benchmark both sides collect) in ``settings.pairs`` pairs.

    The pairs run in waves of one pair per CPU, all pairs of a wave at the same time,
    each on its own CPU (see :attr:`Settings.lanes`).
    *scale* multiplies the blocks (the re-measurement of a flagged benchmark uses 2).
    *plans* carries each benchmark's plan from an earlier measurement into this one, so
    that a re-measurement really has *scale* times the rounds of the first, whatever
    the probe of a busy moment would say; new plans are added to it.
    *on_collect(base_ids, head_ids)* is called with what each side collected.
    *on_measured(m, complete)* is called as soon as every pair of a wave has measured
    (or failed) benchmark *m*; *complete* is true in the last wave, when *m* holds all
    its samples and can be decided.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pin = settings.pin and len(cpus) > 0
    lanes = max(1, min(settings.pairs, settings.lanes or len(cpus) or 1))
    results: dict[str, Measurement] = {}
    plans = {} if plans is None else plans
    lock = threading.Lock()
    layouts: list[bool | None] = []
    for first in range(0, settings.pairs, lanes):
        wave = list(range(first, min(first + lanes, settings.pairs)))
        lane_cpu = {p: cpus[i % len(cpus)] if pin else None for i, p in enumerate(wave)}
        t0 = time.monotonic()
        started: list[tuple[_Worker, _Worker]] = []
        try:
            for p in wave:
                started.append(_start_pair(base, head, settings, f"{tag}{p}", lane_cpu[p]))
            hellos = [[w.receive(settings.ready_timeout) for w in pair] for pair in started]
            _debug(f"{tag}{first}..{wave[-1]}: workers ready after {time.monotonic() - t0:.1f} s")
            layouts.extend(h.get("aslr") for hello in hellos for h in hello)
            if first == 0:
                have_a = {it["id"]: it for it in hellos[0][0]["items"]}
                have_b = {it["id"]: it for it in hellos[0][1]["items"]}
                if on_collect is not None:
                    on_collect(
                        list(have_a), list(have_b), hellos[0][0]["errors"], hellos[0][1]["errors"]
                    )
                wanted = [
                    i for i in (ids if ids is not None else have_a) if i in have_a and i in have_b
                ]
                for i in wanted:
                    limit = have_b[i].get("max_memory_regression")
                    results[i] = Measurement(
                        i,
                        have_b[i].get("metric", "cpu"),
                        MAX_MEMORY_REGRESSION if limit is None else limit,
                    )
            # Peak memory once per benchmark and side, in the first wave, spread over its
            # pairs: the untimed extra call must not hold up one lane for every benchmark.
            turn = {i: wave[k % len(wave)] for k, i in enumerate(results)} if first == 0 else {}
            memory = {p: {i for i, q in turn.items() if q == p} for p in wave}
            collector = _Wave(wave, first + lanes >= settings.pairs, on_measured)
            with ThreadPoolExecutor(len(wave)) as pool:
                futures = [
                    pool.submit(
                        _lane,
                        a,
                        b,
                        list(results.values()),
                        settings,
                        plans,
                        lock,
                        lane_cpu[p],
                        scale,
                        memory[p],
                        f"{tag}{p}",
                        collector.report(p),
                    )
                    for p, (a, b) in zip(wave, started, strict=True)
                ]
                for f in futures:
                    f.result()
        finally:
            for pair in started:
                for w in pair:
                    w.close()
    for m in results.values():
        m.same_layout = all(x is False for x in layouts) if None not in layouts else None
    return list(results.values())


def _lane(
    a: _Worker,
    b: _Worker,
    todo: list[Measurement],
    settings: Settings,
    plans: dict[str, Plan],
    lock: threading.Lock,
    cpu: int | None,
    scale: float,
    memory: set[str],
    tag: str,
    report: Callable[[Measurement, _Samples | None], None],
) -> None:
    """Measure every benchmark of *todo* in one process pair, on *cpu*.

    The peak memory of those in *memory* is measured too; *report* gets each one's samples.
    """
    for m in todo:
        samples = None
        if not (m.error or m.skipped):
            t0 = time.monotonic()
            pinned = [cpu] if cpu is not None and m.metric == "cpu" else None
            samples = _measure_one(a, b, m, settings, plans, lock, pinned, scale, m.id in memory)
            _debug(f"{tag} {m.id}: plan {plans.get(m.id)}, {time.monotonic() - t0:.1f} s")
        report(m, samples)


class _Wave:
    """Gathers each benchmark's samples from the pairs of one wave, in pair order."""

    def __init__(
        self, pairs: list[int], last: bool, on_measured: Callable[[Measurement, bool], None] | None
    ) -> None:
        self._pairs, self._last, self._on_measured = pairs, last, on_measured
        self._got: dict[str, dict[int, _Samples | None]] = {}
        self._lock = threading.Lock()

    def report(self, pair: int) -> Callable[[Measurement, _Samples | None], None]:
        def done(m: Measurement, samples: _Samples | None) -> None:
            with self._lock:
                got = self._got.setdefault(m.id, {})
                got[pair] = samples
                if len(got) < len(self._pairs):
                    return
                for p in self._pairs:  # in pair order, whichever lane finished first
                    s = got[p]
                    if s is None or m.error or m.skipped:
                        continue
                    m.base.append(s.base)
                    m.head.append(s.head)
                    if s.memory is not None:
                        m.base_memory.append(s.memory[0])
                        m.head_memory.append(s.memory[1])
                if self._on_measured is not None:
                    self._on_measured(m, self._last)

        return done


class _Samples(NamedTuple):
    """One benchmark in one process pair: the blocks of each side, peak memory when measured."""

    base: list[list[float]]
    head: list[list[float]]
    memory: tuple[int, int] | None


def _measure_one(
    a: _Worker,
    b: _Worker,
    m: Measurement,
    settings: Settings,
    plans: dict[str, Plan],
    lock: threading.Lock,
    cpu: list[int] | None,
    scale: float,
    memory: bool,
) -> _Samples | None:
    """Start the benchmark in both workers, alternate blocks A B B A ..., let both tests finish.

    Both workers set up and warm up at the same time (each pins itself to *cpu*
    before its first timed call), and both finish at the same time: only the
    blocks have to take turns.  None when either side failed or skipped (*m* says why).
    """
    t = settings.command_timeout
    item = {
        "cmd": "item",
        "id": m.id,
        "warmup": 2,
        "min_warmup_time": settings.warmup_time,
        "metric": m.metric,
        "memory": memory,
        "cpus": cpu,
        "round_time": settings.round_time,
    }
    with lock:
        if m.id in plans:
            item["iterations"] = plans[m.id].iterations
    a.send(**item)
    b.send(**item)
    ready_a, ready_b = a.receive(t), b.receive(t)
    ok_a, ok_b = _ok(m, ready_a, "base"), _ok(m, ready_b, "head")
    if not (ok_a and ok_b):  # a side that reached its benchmark call waits for "end"
        _finish([(a, "base")] * ok_a + [(b, "head")] * ok_b, m, t)
        return None
    with lock:
        if m.id not in plans:
            # Plan from the quicker side's probe: the other side may have been setting up on
            # the same CPU while one probed.
            quick = min((ready_a, ready_b), key=lambda r: _call_time(r["call_time"], m.metric))
            call, iterations = _call_time(quick["call_time"], m.metric), int(quick["iterations"])
            blocks, per_block = _plan(settings, call, iterations)
            plans[m.id] = Plan(blocks, per_block, iterations)
        plan = plans[m.id]
        m.iterations = plan.iterations
    blocks = max(2, round(plan.blocks * scale / 2) * 2)
    got: dict[str, list[list[float]]] = {"base": [], "head": []}
    for j in range(blocks):
        order = ((a, "base"), (b, "head")) if j % 2 == 0 else ((b, "head"), (a, "base"))
        for worker, side in order:
            reply = worker.request(
                t, cmd="block", rounds=plan.per_block, iterations=plan.iterations
            )
            if not _ok(m, reply, side):
                _finish([(a, "base")] if side == "head" else [(b, "head")], m, t)
                return None
            got[side].append(reply[m.metric])
    if not _finish([(a, "base"), (b, "head")], m, t):
        return None
    return _Samples(got["base"], got["head"], (_peak(ready_a), _peak(ready_b)) if memory else None)


def _call_time(probe: dict[str, float], metric: str) -> float:
    """One call in the benchmark's own clock (under load the wall clock of a call says little)."""
    return probe["wall"] if metric == "wall" else max(probe["cpu"], probe.get("step_cpu", 0.0))


def _finish(workers: list[tuple[_Worker, str]], m: Measurement, timeout: float) -> bool:
    """Send ``end`` to every worker, then read each test's outcome (its assertions run now)."""
    for worker, _ in workers:
        worker.send(cmd="end")
    outcomes = [
        _ok(m, worker.receive(timeout), side) for worker, side in workers
    ]  # read every reply
    return all(outcomes)


def _debug(msg: str) -> None:
    if os.environ.get("MLPERF_AB_DEBUG"):
        print(f"[mlperf ab] {msg}", file=sys.stderr, flush=True)


def _peak(reply: dict[str, Any]) -> int:
    return int((reply.get("memory") or {}).get("peak") or 0)


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


def _ok(m: Measurement, reply: dict[str, Any], side: str) -> bool:
    if reply.get("event") != "done" or reply.get("outcome") == "passed":
        return True
    if reply["outcome"] == "skipped":
        m.skipped = f"skipped in {side}: {reply['detail']}"
    else:
        m.error = f"failed in {side}: {reply['detail']}"
    return False

"""The A/B coordinator: pairs of fresh worker processes, rounds interleaved A/B/B/A.

For each process pair it starts one pytest worker per side (see
``_mlperf_ab_worker.py``; :mod:`mlperf.ab.workers` launches them), both pinned to
the same CPU and given the same hash seed, and then, benchmark by benchmark, asks
them for blocks of rounds in the order A B B A A B B A ...  Within a pair only one
worker computes at any moment; the other waits on its pipe.  Pairs run side by
side, one per CPU, so a 2-CPU machine measures two pairs in the time of one.
Several process pairs spread the luck of one process's memory layout.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from mlperf.ab.types import Measurement, Plan, Settings, Side
from mlperf.ab.workers import (
    THREAD_PINS,
    _start_pair,
    _Worker,
)
from mlperf.records import DEFAULT_MAX_MEMORY_REGRESSION as MAX_MEMORY_REGRESSION

__all__ = ["THREAD_PINS", "measure"]


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


def _ok(m: Measurement, reply: dict[str, Any], side: str) -> bool:
    if reply.get("event") != "done" or reply.get("outcome") == "passed":
        return True
    if reply["outcome"] == "skipped":
        m.skipped = f"skipped in {side}: {reply['detail']}"
    else:
        m.error = f"failed in {side}: {reply['detail']}"
    return False

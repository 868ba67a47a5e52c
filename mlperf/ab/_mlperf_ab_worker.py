"""pytest plugin loaded into ``mlperf ab`` worker processes, never into a normal run.

A worker is one pytest session in one revision's checkout.  It collects the
benchmarks, reports their ids, then waits for commands on a pipe: "run this
benchmark for k rounds of n iterations".  Each command re-runs the test item (its
function-scoped fixtures are rebuilt, everything of wider scope stays alive) and
swaps the ``benchmark`` fixture for a proxy that warms up, times the rounds with
both process CPU time and wall time, and optionally measures peak memory in one
extra, untimed call.

Before the first benchmark and after each one it checks that every imported module
of the project came from this side's own revision (``MLPERF_AB_OWN``, set by the
coordinator) and reports the ones that did not: no verdict is ever given for code
the side did not run.

Standalone on purpose: the coordinator copies this file, and ``mlperf/project.py``
as ``_mlperf_ab_project``, into a directory of their own and loads the worker with
``-p _mlperf_ab_worker`` inside the *other* revision, where ``import mlperf`` is
that revision's package (perhaps one without ``mlperf.ab``).  So it imports only
the standard library, pytest and that copy.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
import tracemalloc
from typing import Any

import pytest

__all__ = ["FDS_ENV", "OPTIONS_ENV", "OWN_ENV"]

#: "read_fd,write_fd" of the command and result pipes; set only by the coordinator
FDS_ENV = "MLPERF_AB_FDS"
#: JSON object of ``config.option`` values to set when the revision's plugin has them
OPTIONS_ENV = "MLPERF_AB_OPTIONS"
#: JSON object: the project's own module prefixes and the directories they may come from
OWN_ENV = "MLPERF_AB_OWN"

_MAX_ITERATIONS = 1_000_000


#: options of the user's configuration (``addopts``) that would stop a worker from doing its
#: job, set to what the worker needs before the plugins that own them read them.  Nothing
#: is switched off with ``-p no:...``, which would make such an option unrecognised.
NEUTRAL_OPTIONS: dict[str, Any] = {
    # pytest-benchmark runs disabled: the worker times the rounds itself, through the fixture
    "benchmark_disable": True,
    "benchmark_enable": False,
    "benchmark_only": False,
    "benchmark_skip": False,
    # pytest-xdist: one process is the worker; it must not start its own
    "numprocesses": 0,
    "dist": "no",
    "tx": [],
    # the cache plugin's selections (--lf, --ff, --nf, --sw) would change what is collected
    "lf": False,
    "failedfirst": False,
    "newfirst": False,
    "stepwise": False,
    "stepwise_skip": False,
    # pytest-timeout: a benchmark is measured for many seconds inside one test call
    "timeout": 0,
}


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get(FDS_ENV):
        return
    overridden = []
    for name, value in NEUTRAL_OPTIONS.items():
        if hasattr(config.option, name) and getattr(config.option, name) not in (value, None):
            overridden.append(f"{name}={getattr(config.option, name)!r}")
        if hasattr(config.option, name):
            setattr(config.option, name, value)
    if overridden:  # said in the worker's log
        print(
            f"mlperf ab worker: options set aside for measuring: {', '.join(overridden)}",
            flush=True,
        )
    # Only options this revision knows are set, so an old revision never sees an unknown flag.
    for name, value in json.loads(os.environ.get(OPTIONS_ENV) or "{}").items():
        if hasattr(config.option, name):
            setattr(config.option, name, value)
    config.pluginmanager.register(_Worker(), "mlperf-ab-worker")


def _metric(item: pytest.Item) -> dict[str, Any]:
    """The benchmark's id and its ``mlperf`` marker's settings (the coordinator fills defaults)."""
    marker = item.get_closest_marker("mlperf")
    kwargs = dict(marker.kwargs) if marker else {}
    return {
        "id": item.nodeid,
        "metric": kwargs.get("metric", "cpu"),  # mlperf.records.DEFAULT_METRIC: no import here
        "max_memory_regression": kwargs.get("max_memory_regression"),
    }


def _whole_call(item: pytest.Item) -> bool:
    """A benchmark in pytest-codspeed's style: marked ``benchmark``, without the fixture."""
    return (
        isinstance(item, pytest.Function)
        and item.get_closest_marker("benchmark") is not None
        and "benchmark" not in item.fixturenames
    )


def _foreign() -> list[tuple[str, str]]:
    """The project's imported modules that did not come from this side's own code."""
    own = json.loads(os.environ.get(OWN_ENV) or "{}")
    if not own.get("prefixes"):
        return []
    from _mlperf_ab_project import foreign_modules

    found: list[tuple[str, str]] = foreign_modules(
        own["prefixes"], own["allowed"], own.get("compiled") or None
    )
    return found


def _aslr() -> bool | None:
    """Whether this process's addresses are randomised (None where /proc says nothing)."""
    try:
        with open("/proc/self/personality", encoding="ascii") as fh:
            return not int(fh.read().strip(), 16) & 0x0040000
    except (OSError, ValueError):
        return None


def _why(report: pytest.TestReport) -> str:
    """One line saying why a test failed or skipped (the exception message, or the skip reason)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return str(longrepr[2])[:500]
    crash = getattr(getattr(longrepr, "reprcrash", None), "message", None)
    text = crash or (report.longreprtext.strip().splitlines() or [""])[-1]
    return text.strip().splitlines()[0][:500] if text.strip() else "?"


class _KeepParents:
    """Stand-in for ``nextitem``: tears down the item's own fixtures, keeps every wider scope."""

    def __init__(self, item: pytest.Item) -> None:
        self._chain = item.listchain()[:-1]

    def listchain(self) -> list[Any]:
        return [*self._chain, self]


def _rss_hwm() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _peak_memory(call: Any) -> dict[str, int | None]:
    """Extra peak memory of one call: tracemalloc peak and growth of the RSS high-water mark."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # resets VmHWM to the current RSS
        hwm0: int | None = _current_rss()
    except OSError:
        hwm0 = None
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        call()
        python = max(0, tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    hwm = _rss_hwm() if hwm0 is not None else None
    rss = max(0, hwm - hwm0) if hwm is not None and hwm0 is not None else None
    return {"peak": max(python, rss or 0), "python": python, "rss": rss}


def _current_rss() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


class _Proxy:
    """Takes the place of the ``benchmark`` fixture for one command."""

    def __init__(self, original: Any, worker: _Worker) -> None:
        self._original = original
        self._worker = worker

    def __getattr__(self, name: str) -> Any:  # extra_info, group, name, ... stay the fixture's
        return getattr(self._original, name)

    def __call__(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        def step(n: int) -> tuple[float, float, Any]:
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                result = function(*args, **kwargs)
            w1, c1 = time.perf_counter(), time.process_time()
            return c1 - c0, w1 - w0, result

        return self._run(step, fixed=False)

    def pedantic(
        self,
        target: Any,
        args: Any = (),
        kwargs: Any = None,
        setup: Any = None,
        teardown: Any = None,
        rounds: int = 1,
        warmup_rounds: int = 0,
        iterations: int = 1,
    ) -> Any:
        if setup is None and teardown is None:
            return self(target, *args, **(kwargs or {}))

        def step(n: int) -> tuple[float, float, Any]:
            # setup and teardown stay outside the timer, as in pytest-benchmark: one call per round
            made = setup() if setup is not None else None
            a, kw = (tuple(made[0]), dict(made[1])) if made else (tuple(args), dict(kwargs or {}))
            c0, w0 = time.process_time(), time.perf_counter()
            result = target(*a, **kw)
            w1, c1 = time.perf_counter(), time.process_time()
            if teardown is not None:
                teardown(*a, **kw)
            return c1 - c0, w1 - w0, result

        return self._run(step, fixed=True, extra_warmup=warmup_rounds)

    def _run(self, step: Any, *, fixed: bool, extra_warmup: int = 0) -> Any:
        # The original fixture runs our measuring closure once (it is in disabled mode),
        # so pytest-benchmark and the revision's own plugin see an ordinary, used fixture.
        return self._original(lambda: self._worker.measure(step, fixed, extra_warmup))


class _Worker:
    """The worker's side of the protocol (JSON lines over two pipes).

    coordinator -> worker: ``item`` (start one benchmark: set up and warm up on any
    CPU, pin to the item's CPU, calibrate, measure memory, reply ``ready``), then any
    number of ``block`` (time *rounds* rounds of *iterations* calls, reply with the
    samples), then ``end`` (let the test finish, reply ``done`` with
    its outcome); ``quit`` ends the session.  A test that fails before or after its
    benchmark call replies ``done`` at once, so the coordinator never waits forever.
    """

    def __init__(self) -> None:
        r, w = (int(x) for x in os.environ[FDS_ENV].split(","))
        self._commands = os.fdopen(r, "r", encoding="utf-8")
        self._results = os.fdopen(w, "w", encoding="utf-8")
        self._collect_errors: list[str] = []
        self._request: dict[str, Any] | None = None
        self._measured = False
        self._all_cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    def _send(self, **message: Any) -> None:
        self._results.write(json.dumps(message) + "\n")
        self._results.flush()

    def _receive(self) -> dict[str, Any]:
        line = self._commands.readline()
        return dict(json.loads(line)) if line else {"cmd": "quit"}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            last = (report.longreprtext.strip().splitlines() or ["?"])[-1]
            self._collect_errors.append(f"{report.nodeid}: {last}")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        original = pyfuncitem.funcargs.get("benchmark")
        if self._request is not None and original is None and _whole_call(pyfuncitem):
            return (yield from self._whole_calls(pyfuncitem))
        if self._request is None or original is None:
            return (yield)
        pyfuncitem.funcargs["benchmark"] = _Proxy(original, self)
        try:
            return (yield)
        finally:  # pytest-benchmark checks the fixture's type when it makes the report
            pyfuncitem.funcargs["benchmark"] = original

    def _whole_calls(self, item: pytest.Function) -> Any:
        """Measure a marker-style benchmark: the whole test function is the measured call."""
        function = item.obj

        def measured(**kwargs: Any) -> Any:
            def step(n: int) -> tuple[float, float, Any]:
                c0, w0 = time.process_time(), time.perf_counter()
                for _ in range(n):
                    result = function(**kwargs)
                w1, c1 = time.perf_counter(), time.process_time()
                return c1 - c0, w1 - w0, result

            return self.measure(step, False, 0)

        item.obj = measured
        try:
            return (yield)
        finally:
            item.obj = function

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        items = {
            it.nodeid: it
            for it in session.items
            if ("benchmark" in getattr(it, "fixturenames", ()) or _whole_call(it))
            and not it.get_closest_marker("skip")
        }
        described = [_metric(it) for it in items.values()]
        self._send(
            event="hello",
            items=described,
            errors=self._collect_errors,
            aslr=_aslr(),
            foreign=_foreign(),
        )
        while True:
            command = self._receive()
            if command.get("cmd") != "item":
                break
            self._run_item(items[command["id"]], command)
        session._setupstate.teardown_exact(None)
        return True

    def _run_item(self, item: pytest.Item, command: dict[str, Any]) -> None:
        from _pytest.runner import runtestprotocol

        # Fixtures and warm-up run on any CPU, so that both workers of a pair set up side
        # by side; measure() pins the process to the command's CPU before the first timed call.
        self._pin(self._all_cpus)
        self._request, self._measured = command, False
        try:
            item.session._setupstate.teardown_exact(item)  # leave another module's fixtures
            reports = runtestprotocol(item, log=False, nextitem=_KeepParents(item))  # type: ignore[arg-type]
        finally:
            self._request = None
        outcome, detail = "passed", ""
        for rep in reports:
            if rep.failed or rep.skipped:
                outcome = "failed" if rep.failed else "skipped"
                detail = _why(rep)
                break
        if outcome == "passed" and not self._measured:
            outcome, detail = "failed", "the test never called its benchmark fixture"
        self._send(event="done", id=item.nodeid, outcome=outcome, detail=detail, foreign=_foreign())

    def _pin(self, cpus: list[int]) -> None:
        """Set the CPU affinity of every thread of this process (thread pools included)."""
        if not cpus or not hasattr(os, "sched_setaffinity"):
            return
        try:
            threads = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            threads = [0]
        for tid in threads:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:  # the thread ended meanwhile
                pass

    def measure(self, step: Any, fixed: bool, extra_warmup: int) -> Any:
        """Warm up, calibrate, measure memory; then serve ``block`` commands until ``end``."""
        req = self._request or {}
        self._measured = True
        warmup = max(int(req.get("warmup", 2)), extra_warmup)
        min_warm = float(req.get("min_warmup_time", 0.0))
        start, done, result = time.perf_counter(), 0, None
        while done < warmup or time.perf_counter() - start < min_warm:
            _, _, result = step(1)
            done += 1
        self._pin(req.get("cpus") or self._all_cpus)  # the probe calls re-warm this CPU's caches
        # Three timed calls (median: one preempted call must not skew the plan); "step" also
        # counts the untimed setup/teardown a pedantic round pays, so plans budget for it.
        # A benchmark the coordinator has planned already needs one call, to warm this CPU.
        probes = []
        for _ in range(1 if req.get("iterations") else 3):
            c0 = time.process_time()
            cpu1, wall1, result = step(1)
            probes.append((cpu1, wall1, time.process_time() - c0))
        cpu1, wall1, step_cpu = (sorted(p[k] for p in probes)[len(probes) // 2] for k in range(3))
        iterations = 1 if fixed else int(req.get("iterations") or 0)
        if not iterations:
            clock = wall1 if req.get("metric") == "wall" else cpu1
            wanted = float(req.get("round_time", 1e-3))
            iterations = max(1, min(_MAX_ITERATIONS, math.ceil(wanted / max(clock, 1e-9))))
        memory = _peak_memory(lambda: step(1)) if req.get("memory") else None
        self._send(
            event="ready",
            iterations=iterations,
            call_time={"cpu": cpu1, "wall": wall1, "step_cpu": step_cpu},
            memory=memory,
        )
        while True:
            command = self._receive()
            if command.get("cmd") != "block":
                break
            if not fixed and command.get("iterations"):  # the coordinator's: the same on both sides
                iterations = int(command["iterations"])
            cpu, wall = [], []
            for _ in range(int(command["rounds"])):
                c, w, result = step(iterations)
                cpu.append(c / iterations)
                wall.append(w / iterations)
            self._send(event="block", cpu=cpu, wall=wall)
        return result

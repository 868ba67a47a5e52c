"""The mlperf pytest plugin: options, markers, fixtures and the end-of-session gate.

Loaded through the ``pytest11`` entry point.  Importing it must stay cheap: no
engine, SDK, numba or matplotlib import happens here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

__all__ = ["MARKERS"]

#: marker name -> its description (registered so --strict-markers passes)
MARKERS: dict[str, str] = {
    "cluster": "needs a real multi-machine cluster; runs with --mlperf-cluster and the "
    "SPARK_REMOTE / DASK_SCHEDULER_ADDRESS / RAY_ADDRESS addresses",
    "cloud": "needs real cloud credentials and spends money; runs with --mlperf-cloud",
    "gpu": "needs a CUDA device; skipped when none is present",
    "slow": "longer variant; deselected unless --mlperf-slow (make bench-full)",
    "spark": "uses PySpark (extra: spark)",
    "dask": "uses Dask distributed (extra: dask)",
    "ray": "uses Ray (extra: ray)",
    "mlperf(metric='cpu', max_regression=0.25, max_memory_regression=0.10, memory=True): "
    "per-benchmark gate settings": "",
}

#: engine marker -> (module to probe, extra that installs it)
_ENGINE_MODULES = {
    "spark": ("pyspark", "spark"),
    "dask": ("distributed", "dask"),
    "ray": ("ray", "ray"),
}
_CLUSTER_VARS = {"spark": "SPARK_REMOTE", "dask": "DASK_SCHEDULER_ADDRESS", "ray": "RAY_ADDRESS"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlperf", "mlperf: benchmark gates and cluster/cloud tests")
    group.addoption(
        "--mlperf-cluster",
        action="store_true",
        default=False,
        help="run tests marked 'cluster' against the addresses in SPARK_REMOTE, "
        "DASK_SCHEDULER_ADDRESS and RAY_ADDRESS (default: skip them)",
    )
    group.addoption(
        "--mlperf-cloud",
        action="store_true",
        default=False,
        help="run tests marked 'cloud' against real cloud accounts; they spend money (default: skip)",
    )
    group.addoption(
        "--mlperf-slow",
        action="store_true",
        default=False,
        help="also run tests marked 'slow' (default: skip them)",
    )
    group.addoption(
        "--mlperf-baselines",
        metavar="DIR",
        default="baselines",
        help="directory of stored baselines, <DIR>/<machine-id>/<suite>.json (default: baselines)",
    )
    group.addoption(
        "--mlperf-save-baseline",
        action="store_true",
        default=False,
        help="store this run's benchmark results as the baseline for this machine",
    )
    group.addoption(
        "--mlperf-no-gate",
        action="store_true",
        default=False,
        help="print the verdicts but never fail the session on a REGRESSION",
    )
    group.addoption(
        "--mlperf-confirm",
        metavar="N",
        type=int,
        default=1,
        help="re-measure a benchmark whose time verdict is REGRESSION up to N times after the "
        "other tests; the last measurement's verdict stands (default: 1; 0: off)",
    )
    group.addoption(
        "--mlperf-report",
        metavar="DIR",
        default=None,
        help="write latest.json and latest.md (the verdict table) and the suites' "
        "tables and plots into DIR (default: reports when benchmarks run)",
    )
    group.addoption(
        "--mlperf-cache",
        metavar="DIR",
        default=".cache/mlperf",
        help="where generated data sets are cached (default: .cache/mlperf)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}" if doc else name)
    # suites pin engine tests to one xdist worker; keep --strict-markers happy with -p no:xdist too
    config.addinivalue_line(
        "markers", "xdist_group(name): run on the xdist worker that owns this group"
    )
    _check_options(config)


def _check_options(config: pytest.Config) -> None:
    """Refuse option combinations that cannot do what the user asked, in one sentence."""
    for opt in ("mlperf_baselines", "mlperf_report", "mlperf_cache"):
        value = config.getoption(opt)
        if value is not None and Path(value).exists() and not Path(value).is_dir():
            flag = "--" + opt.replace("_", "-")
            raise pytest.UsageError(
                f"{flag}={value!r} is a file; give a directory (it is created if missing)."
            )
    confirm = config.getoption("mlperf_confirm")
    if confirm < 0:
        raise pytest.UsageError(
            f"--mlperf-confirm={confirm} must be >= 0 (re-measurements of a time REGRESSION; 0 turns them off)."
        )
    if config.getoption("mlperf_cluster") and not any(
        os.environ.get(v) for v in _CLUSTER_VARS.values()
    ):
        raise pytest.UsageError(
            "--mlperf-cluster needs the cluster's address: set SPARK_REMOTE, DASK_SCHEDULER_ADDRESS "
            "and/or RAY_ADDRESS (make test-cluster starts a loopback cluster and sets them)."
        )
    if config.getoption("mlperf_save_baseline"):
        disabled = config.getoption("benchmark_disable", False) or config.getoption(
            "benchmark_skip", False
        )
        if disabled or config.getoption("numprocesses", None):
            raise pytest.UsageError(
                "--mlperf-save-baseline needs measured benchmarks: drop --benchmark-disable/--benchmark-skip "
                "and -n (pytest-xdist turns benchmarks off), or run `make baseline`."
            )


def _skip_reason(item: pytest.Item, config: pytest.Config) -> str | None:
    from mlperf._optional import available, install_hint

    if item.get_closest_marker("cloud") and not config.getoption("mlperf_cloud"):
        return (
            "cloud test: spends money on a real account; enable with --mlperf-cloud and credentials"
        )
    if item.get_closest_marker("slow") and not config.getoption("mlperf_slow"):
        return "slow variant: enable with --mlperf-slow (make bench-full)"
    for engine, (module, _extra) in _ENGINE_MODULES.items():
        if item.get_closest_marker(engine) and not available(module):
            return f"{engine} test: {module!r} is not installed; enable with {install_hint(module)}"
    if item.get_closest_marker("cluster"):
        if not config.getoption("mlperf_cluster"):
            return (
                "cluster test: enable with --mlperf-cluster and set SPARK_REMOTE, "
                "DASK_SCHEDULER_ADDRESS or RAY_ADDRESS to the cluster"
            )
        for engine, var in _CLUSTER_VARS.items():
            if item.get_closest_marker(engine) and not os.environ.get(var):
                return f"cluster test for {engine}: set {var} to the cluster's address"
    if item.get_closest_marker("gpu") and not _cuda_present():
        return "gpu test: no CUDA device found (needs an NVIDIA GPU and CuPy: pip install cupy-cuda12x or cupy-cuda13x)"
    return None


_CUDA: bool | None = None


def _cuda_present() -> bool:
    global _CUDA
    if _CUDA is None:
        from mlperf._optional import available

        _CUDA = False
        if available("cupy"):
            try:
                import cupy

                _CUDA = cupy.cuda.runtime.getDeviceCount() > 0
            except Exception:  # noqa: BLE001 - no driver or no device both mean "no GPU here"
                _CUDA = False
    return _CUDA


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _keep_xdist_groups(config, items)
    for item in items:
        if item.get_closest_marker("mlperf"):
            _settings(item)  # a bad marker is a usage error even when benchmarks are off
        reason = _skip_reason(item, config)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def mlperf_cache_dir(pytestconfig: pytest.Config) -> Path:
    """Directory where generated data sets are cached (``--mlperf-cache``)."""
    path = Path(pytestconfig.getoption("mlperf_cache"))
    if not path.is_absolute():
        path = pytestconfig.rootpath / path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def mlperf_report_dir(pytestconfig: pytest.Config) -> Path:
    """Directory for tables and plots the suites write (``--mlperf-report``, default reports/)."""
    path = Path(pytestconfig.getoption("mlperf_report") or "reports")
    if not path.is_absolute():
        path = pytestconfig.rootpath / path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def mlperf_data(mlperf_cache_dir: Path) -> Callable[..., pd.DataFrame]:
    """Factory of cached data sets: ``mlperf_data("purchases", 100_000, seed=42)``.

    Generated once per (generator, size, seed) and cached as Parquet under the
    cache directory, so every xdist worker and every later session reuses it.
    """
    from mlperf.data import cached_frame

    def load(kind: str, n_rows: int, seed: int = 42) -> pd.DataFrame:
        return cached_frame(kind, n_rows, seed=seed, cache_dir=mlperf_cache_dir)

    return load


@pytest.fixture(scope="session")
def purchases_100k(mlperf_data: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """The tutorial's purchase frame, 100,000 rows (seed 42)."""
    return mlperf_data("purchases", 100_000)


@pytest.fixture(scope="session")
def purchases_1m(mlperf_data: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """The tutorial's purchase frame, 1,000,000 rows (seed 42)."""
    return mlperf_data("purchases", 1_000_000)


@pytest.fixture(scope="session")
def customers_100k(mlperf_data: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """The tutorial's customer frame (memory and I/O sections), 100,000 rows."""
    return mlperf_data("customers", 100_000)


@pytest.fixture(scope="session")
def customers_1m(mlperf_data: Callable[..., pd.DataFrame]) -> pd.DataFrame:
    """The tutorial's customer frame (memory and I/O sections), 1,000,000 rows."""
    return mlperf_data("customers", 1_000_000)


@pytest.fixture(scope="session")
def matrix_10k() -> np.ndarray:
    """10,000 x 100 standard-normal float64 matrix (the compute section's input)."""
    from mlperf.data import make_matrix

    return make_matrix(10_000, 100)


# ------------------------------------------------------------ recording rounds


class _DualClock:
    """pytest-benchmark timer that returns wall time and also reads process CPU time.

    pytest-benchmark calls its timer exactly twice per round (start, end), so the
    last ``2 * rounds`` readings pair up with the rounds it keeps.  All instances
    compare equal so pytest-benchmark computes the timer precision only once.
    """

    __name__ = "perf_counter+process_time"

    def __init__(self) -> None:
        self.readings: list[tuple[float, float]] = []

    def __call__(self) -> float:
        import time

        wall, cpu = time.perf_counter(), time.process_time()
        self.readings.append((wall, cpu))
        return wall

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DualClock)

    def __hash__(self) -> int:
        return hash(_DualClock)

    def rounds(self, n: int, iterations: int) -> tuple[list[float], list[float]]:
        pairs = self.readings[-2 * n :] if n else []
        wall = [(pairs[i + 1][0] - pairs[i][0]) / iterations for i in range(0, len(pairs), 2)]
        cpu = [(pairs[i + 1][1] - pairs[i][1]) / iterations for i in range(0, len(pairs), 2)]
        return wall, cpu


def _settings(item: pytest.Item) -> dict[str, Any]:
    marker = item.get_closest_marker("mlperf")
    opts: dict[str, Any] = {
        "metric": "cpu",
        "max_regression": 0.25,
        "max_memory_regression": 0.10,
        "memory": True,
    }
    if marker is None:
        return opts
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.mlperf takes keywords only, got {marker.args!r}"
        )
    unknown = set(marker.kwargs) - set(opts)
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown @pytest.mark.mlperf keyword(s) {sorted(unknown)}; known: {sorted(opts)}"
        )
    opts.update(marker.kwargs)
    if opts["metric"] not in ("cpu", "wall"):
        raise pytest.UsageError(
            f"{item.nodeid}: mlperf metric must be 'cpu' or 'wall', got {opts['metric']!r}"
        )
    for key in ("max_regression", "max_memory_regression"):
        if not isinstance(opts[key], (int, float)) or opts[key] < 0:
            raise pytest.UsageError(
                f"{item.nodeid}: mlperf {key} must be a number >= 0, got {opts[key]!r}"
            )
    return opts


def _memory_round(fn: Callable[[], Any]) -> dict[str, int | None]:
    from mlperf.memory import peak_memory

    with peak_memory() as mem:
        fn()
    return {"peak": mem.peak, "python": mem.python, "rss": mem.rss}


def _instrument(fixture: Any, settings: dict[str, Any], sink: dict[str, Any]) -> None:
    """Give a pytest-benchmark fixture the dual clock and an extra, untimed memory round."""
    clock = _DualClock()
    fixture._timer = clock
    sink["clock"] = clock
    raw, raw_pedantic = fixture._raw, fixture._raw_pedantic

    def _raw(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = raw(function, *args, **kwargs)
        if fixture.enabled and settings["memory"]:
            sink["memory"] = _memory_round(lambda: function(*args, **kwargs))
        return result

    def _raw_pedantic(target: Callable[..., Any], args: Any = (), kwargs: Any = None, setup: Any = None,
                      teardown: Any = None, **rest: Any) -> Any:  # fmt: skip
        result = raw_pedantic(
            target, args=args, kwargs=kwargs, setup=setup, teardown=teardown, **rest
        )
        if fixture.enabled and settings["memory"]:
            a, kw = args, kwargs or {}
            if setup is not None:
                made = setup()
                if made:
                    a, kw = made
            sink["memory"] = _memory_round(lambda: target(*a, **kw))
            if teardown is not None:
                teardown(*a, **kw)
        return result

    fixture._raw, fixture._raw_pedantic = _raw, _raw_pedantic


class _Recorder:
    """Collects one record per benchmark that really ran (not disabled, not failed)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def add(
        self, item: pytest.Item, fixture: Any, settings: dict[str, Any], sink: dict[str, Any]
    ) -> None:
        record = self.build(item, fixture, settings, sink)
        if record is None:
            return
        first = item.stash.get(_REMEASURE_KEY, None)
        if first is None:
            self.records.append(record)
        else:  # a re-measurement of a flagged benchmark: kept with the first measurement
            first.setdefault("remeasured", []).append(record)

    @staticmethod
    def build(
        item: pytest.Item, fixture: Any, settings: dict[str, Any], sink: dict[str, Any]
    ) -> dict[str, Any] | None:
        from mlperf.baselines import suite_of
        from mlperf.stats import summarize

        stats = getattr(fixture, "stats", None)
        data = list(getattr(getattr(stats, "stats", None), "data", []) or [])
        if stats is None or not data or "clock" not in sink:
            return None
        wall, cpu = sink["clock"].rounds(len(data), stats.iterations)
        if len(wall) != len(
            data
        ):  # pytest-benchmark changed its timer protocol: keep its wall samples only
            wall, cpu = data, []
        record: dict[str, Any] = {
            "id": item.nodeid,
            "suite": suite_of(item.nodeid),
            "metric": settings["metric"],
            "wall": {**summarize(wall).as_dict(), "samples": wall},
            "memory": sink.get("memory"),
            "extra_info": dict(fixture.extra_info),
            "max_regression": settings["max_regression"],
            "max_memory_regression": settings["max_memory_regression"],
        }
        if cpu:
            record["cpu"] = {**summarize([max(c, 0.0) for c in cpu]).as_dict(), "samples": cpu}
        elif settings["metric"] == "cpu":
            record["metric"] = "wall"
        return record


_RECORDER_KEY = pytest.StashKey[_Recorder]()
_GATE_KEY = pytest.StashKey[dict[str, Any]]()
_NO_GATE: dict[str, Any] = {}
#: on an item being re-measured: the record of its first measurement
_REMEASURE_KEY = pytest.StashKey[dict[str, Any]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if fixture is None or not hasattr(fixture, "_raw_pedantic") or not fixture.enabled:
        return (yield)
    settings = _settings(item)
    sink: dict[str, Any] = {}
    _instrument(fixture, settings, sink)
    if _REMEASURE_KEY in item.stash:  # pytest-benchmark's own table keeps the first measurement
        fixture._add_stats = lambda _stats: None
    result = yield  # raises when the test failed: then nothing is recorded
    item.config.stash.setdefault(_RECORDER_KEY, _Recorder()).add(item, fixture, settings, sink)
    return result


# ------------------------------------------------------------------- the gate


def _root_path(config: pytest.Config, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else config.rootpath / path


def _benchmarks_enabled(config: pytest.Config) -> bool:
    bs = getattr(config, "_benchmarksession", None)
    return bs is not None and not bs.disabled and not bs.skip


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if not _benchmarks_enabled(config) or hasattr(config, "workerinput"):
        return
    from mlperf.baselines import BaselineError, load_machine, machine_id

    root = _root_path(config, config.getoption("mlperf_baselines"))
    try:
        stored = load_machine(root, machine_id())
    except BaselineError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_GATE_KEY] = {"stored": stored, "root": root}


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Any:
    result = yield
    if not (session.shouldfail or session.shouldstop):
        _remeasure_regressions(session)
    return result


def _remeasure_regressions(session: pytest.Session) -> None:
    """Run each benchmark whose time verdict is REGRESSION again, up to ``--mlperf-confirm`` times.

    A shared machine has slow spells of seconds (this project's 2-core VMs run a
    pure-Python loop up to 1.8x slower for a while), and a stored baseline cannot
    tell such a spell from a slower commit.  A real regression is slower every
    time; a spell has usually passed by the time the other tests are done.  The
    last measurement's verdict stands; memory is not re-measured.
    """
    config = session.config
    times = config.getoption("mlperf_confirm")
    recorder = config.stash.get(_RECORDER_KEY, None)
    if not times or recorder is None or config.getoption("mlperf_save_baseline"):
        return
    from _pytest.runner import runtestprotocol

    stored = config.stash.get(_GATE_KEY, _NO_GATE).get("stored", {})
    items = {item.nodeid: item for item in session.items}
    for record in list(recorder.records):
        item = items.get(record["id"])
        for attempt in range(times):
            latest = (record.get("remeasured") or [record])[-1]
            flagged = _verdict(latest, stored.get(record["id"]), set())["time"] == "REGRESSION"
            if item is None or not flagged:
                break
            item.stash[_REMEASURE_KEY] = record
            try:
                runtestprotocol(item, log=False, nextitem=None)
            finally:
                del item.stash[_REMEASURE_KEY]
            if len(record.get("remeasured") or []) <= attempt:  # it failed: the verdict stands
                break


def _gate_verdict(
    record: dict[str, Any], stored: dict[str, Any] | None, elsewhere: set[str]
) -> dict[str, Any]:
    """The verdict of a record; a re-measured one takes its time verdict from the last re-measurement."""
    verdict = _verdict(record, stored, elsewhere)
    again = record.get("remeasured") or []
    if not again or stored is None:
        return verdict
    last = _verdict(again[-1], stored, elsewhere)
    first = {k: verdict[k] for k in ("time", "ratio", "p")}
    verdict.update({k: last[k] for k in ("time", "ratio", "p")}, first=first)
    verdict["text"] = f"{last['text']}, re-measured (first {verdict['first']['ratio']:.2f}x)"
    return verdict


def _verdict(
    record: dict[str, Any], stored: dict[str, Any] | None, elsewhere: set[str]
) -> dict[str, Any]:
    from mlperf.stats import compare_samples, describe_ratio, memory_verdict

    if stored is None:
        label = "no-baseline-for-this-machine" if record["id"] in elsewhere else "new"
        return {"time": label, "memory": label, "ratio": None, "p": None, "text": label}
    metric = record["metric"]
    ref = (stored.get(metric) or {}).get("samples") or []
    cur = (record.get(metric) or {}).get("samples") or []
    verdict: dict[str, Any] = {
        "time": "new",
        "memory": "new",
        "ratio": None,
        "p": None,
        "text": "new",
    }
    if ref and cur:
        cmp = compare_samples(ref, cur, max_regression=record["max_regression"])
        p = cmp.p_slower if cmp.ratio >= 1 else cmp.p_faster
        verdict.update(time=cmp.verdict, ratio=cmp.ratio, p=p, text=describe_ratio(cmp.ratio, p))
    mem_ref, mem_cur = (
        (stored.get("memory") or {}).get("peak"),
        (record.get("memory") or {}).get("peak"),
    )
    if mem_ref is not None and mem_cur is not None:
        verdict["memory"] = memory_verdict(
            mem_ref, mem_cur, max_regression=record["max_memory_regression"]
        )
        verdict["memory_ratio"] = mem_cur / mem_ref if mem_ref else None
    return verdict


def _run_gate(config: pytest.Config, records: list[dict[str, Any]]) -> dict[str, Any]:
    from mlperf.baselines import (
        current_commit,
        environment,
        known_elsewhere,
        machine_id,
        save_records,
    )

    state = config.stash.get(_GATE_KEY, _NO_GATE)
    root = state.get("root") or _root_path(config, config.getoption("mlperf_baselines"))
    stored = state.get("stored", {})
    machine = machine_id()
    elsewhere = known_elsewhere(root, machine)
    regressions = []
    for record in records:
        record["verdict"] = _gate_verdict(record, stored.get(record["id"]), elsewhere)
        if "REGRESSION" in (record["verdict"]["time"], record["verdict"]["memory"]):
            regressions.append(record["id"])
    commit = current_commit(config.rootpath)
    saved = []
    if config.getoption("mlperf_save_baseline"):
        saved = [str(p) for p in save_records(root, records, machine=machine, commit=commit)]
    from datetime import UTC, datetime

    run = {
        "schema_version": 1,
        "kind": "mlperf-run",
        "machine_id": machine,
        "commit": commit,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "benchmarks": records,
        "gate": {
            "failed": bool(regressions) and not config.getoption("mlperf_save_baseline"),
            "regressions": regressions,
            "baselines": str(root / machine),
            "saved": saved,
        },
    }
    _write_report(config, run)
    return run


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def _fmt_bytes(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def verdict_rows(run: dict[str, Any]) -> list[list[str]]:
    """The verdict table as rows of text (header first), for the terminal and markdown."""
    rows = [["benchmark", "metric", "median", "vs baseline", "peak memory", "verdict"]]
    for rec in run["benchmarks"]:
        v = rec["verdict"]
        mem = rec.get("memory") or {}
        mem_text = _fmt_bytes(mem.get("peak")) + (
            f" ({v['memory']})" if v["memory"] not in ("new",) else ""
        )
        label = "REGRESSION" if "REGRESSION" in (v["time"], v["memory"]) else v["time"]
        rows.append([rec["id"], rec["metric"], _fmt_seconds((rec.get(rec["metric"]) or {}).get("median")),
                     v["text"], mem_text, label])  # fmt: skip
    return rows


def _write_report(config: pytest.Config, run: dict[str, Any]) -> None:
    import json

    out = _root_path(config, config.getoption("mlperf_report") or "reports")
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(run, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    rows = verdict_rows(run)
    md = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    head = f"# mlperf run on `{run['machine_id']}` at {run['created']} (commit {run['commit']})\n\n"
    (out / "latest.md").write_text(head + "\n".join(md) + "\n", encoding="utf-8")
    history = out / "history"
    history.mkdir(exist_ok=True)
    slim = {**run, "benchmarks": [
        {k: ({kk: vv for kk, vv in v.items() if kk != "samples"} if isinstance(v, dict) else v)
         for k, v in rec.items() if k != "remeasured"} for rec in run["benchmarks"]]}  # fmt: skip
    with open(history / f"{run['machine_id']}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(slim, ensure_ascii=False) + "\n")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    recorder = config.stash.get(_RECORDER_KEY, None)
    if recorder is None or not recorder.records or hasattr(config, "workerinput"):
        return
    run = _run_gate(config, recorder.records)
    state: dict[str, Any] = config.stash.get(_GATE_KEY, _NO_GATE)
    config.stash[_GATE_KEY] = {**state, "run": run}
    if run["gate"]["failed"] and not config.getoption("mlperf_no_gate") and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is not None and bs.disabled and not hasattr(config, "workerinput"):
        why = (
            "pytest-xdist is active"
            if getattr(bs, "xdist_warning", False)
            else "--benchmark-disable"
        )
        terminalreporter.write_line(
            f"mlperf: correctness mode ({why}): benchmark bodies ran once, untimed; nothing was measured "
            "or gated. Run `make bench` (no -n) to measure."
        )
    run = config.stash.get(_GATE_KEY, _NO_GATE).get("run")
    if not run:
        return
    rows = verdict_rows(run)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    terminalreporter.section(f"mlperf gate: {run['machine_id']}", sep="-")
    for i, row in enumerate(rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        terminalreporter.write_line(line, red=row[-1] == "REGRESSION", bold=i == 0)
    gate = run["gate"]
    if gate["saved"]:
        terminalreporter.write_line(f"mlperf: baseline saved to {', '.join(gate['saved'])}")
    if gate["regressions"]:
        how = " (ignored: --mlperf-no-gate)" if config.getoption("mlperf_no_gate") else ""
        how = " (not gating: --mlperf-save-baseline)" if gate["saved"] else how
        terminalreporter.write_line(
            f"mlperf: {len(gate['regressions'])} REGRESSION(s){how}", red=True, bold=True
        )


def _keep_xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``--dist loadgroup`` group again under pytest >= 9.2.

    xdist tags grouped items by setting ``item._nodeid = "<id>@<group>"``, but pytest 9.2
    derives ``nodeid`` from ``item._id``, so the tag is lost and groups are spread over
    workers (each then starting its own Spark/Dask/Ray).  Carry the tag into ``_id``.
    """
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")):
        return
    try:
        from _pytest.nodeid import coerce_node_id
    except ImportError:  # older pytest: xdist's own tag already works
        return
    for item in items:
        tagged = item.__dict__.get("_nodeid")
        if isinstance(tagged, str) and "@" in tagged and item.nodeid != tagged:
            item._id = coerce_node_id(tagged)

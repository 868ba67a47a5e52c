"""The mlperf pytest plugin: hooks, options, markers and fixtures.

Loaded through the ``pytest11`` entry point.  Importing it must stay cheap: no
engine, SDK, numba or matplotlib import happens here.  The hooks delegate: the
recording of rounds (everything that touches pytest-benchmark's internals) is
:mod:`mlperf._recording`, the verdicts and re-measurements :mod:`mlperf.gate`, the
run files and the terminal table :mod:`mlperf.report.latest`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlperf import _recording, gate
from mlperf.records import (
    DEFAULT_BASELINES_DIR,
    DEFAULT_CACHE_DIR,
    DEFAULT_MAX_MEMORY_REGRESSION,
    DEFAULT_MAX_REGRESSION,
    DEFAULT_METRIC,
    DEFAULT_REPORTS_DIR,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Generator

    import numpy as np
    import pandas as pd

__all__ = ["MARKERS"]

#: marker name -> its description (registered so --strict-markers passes).  All of them are
#: mlperf's own names: a project's ``slow``, ``gpu`` or ``spark`` markers are never touched.
MARKERS: dict[str, str] = {
    "mlperf_cluster": "needs a real multi-machine cluster; runs with --mlperf-cluster and the "
    "SPARK_REMOTE / DASK_SCHEDULER_ADDRESS / RAY_ADDRESS addresses",
    "mlperf_cloud": "needs real cloud credentials and spends money; runs with --mlperf-cloud",
    "mlperf_gpu": "needs a CUDA device; skipped when none is present",
    "mlperf_slow": "longer variant; deselected unless --mlperf-slow",
    "mlperf_spark": "uses PySpark (extra: spark); skipped with the install line when missing",
    "mlperf_dask": "uses Dask (extra: dask); skipped with the install line when missing",
    "mlperf_ray": "uses Ray (extra: ray); skipped with the install line when missing",
    f"mlperf(metric={DEFAULT_METRIC!r}, max_regression={DEFAULT_MAX_REGRESSION}, "
    f"max_memory_regression={DEFAULT_MAX_MEMORY_REGRESSION:.2f}, memory=True): "
    "per-benchmark gate settings": "",
}

#: engine -> (its marker, module to probe, the variable that points it at a cluster)
_ENGINES = {
    "spark": ("mlperf_spark", "pyspark", "SPARK_REMOTE"),
    "dask": ("mlperf_dask", "distributed", "DASK_SCHEDULER_ADDRESS"),
    "ray": ("mlperf_ray", "ray", "RAY_ADDRESS"),
}
_CLUSTER_VARS = [var for _marker, _module, var in _ENGINES.values()]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlperf", "mlperf: benchmark gates and cluster/cloud tests")
    group.addoption(
        "--mlperf-cluster",
        action="store_true",
        default=False,
        help="run tests marked 'mlperf_cluster' against the addresses in SPARK_REMOTE, "
        "DASK_SCHEDULER_ADDRESS and RAY_ADDRESS (default: skip them)",
    )
    group.addoption(
        "--mlperf-cloud",
        action="store_true",
        default=False,
        help="run tests marked 'mlperf_cloud' against real cloud accounts; they spend money "
        "(default: skip)",
    )
    group.addoption(
        "--mlperf-slow",
        action="store_true",
        default=False,
        help="also run tests marked 'mlperf_slow' (default: skip them)",
    )
    group.addoption(
        "--mlperf-baselines",
        metavar="DIR",
        default=None,
        help="directory of stored baselines, <DIR>/<machine-id>/<suite>.json "
        f"(default: the mlperf_baselines ini option, else {DEFAULT_BASELINES_DIR})",
    )
    group.addoption(
        "--mlperf-require-baseline",
        action="store_true",
        default=False,
        help="fail the run when a measured benchmark has no stored baseline for this machine "
        "(default: such a benchmark is reported as new and the run passes)",
    )
    group.addoption(
        "--mlperf-require-cloud",
        action="store_true",
        default=False,
        help="run the tests marked 'mlperf_cloud' and fail, not skip, one whose credentials are "
        "missing (implies --mlperf-cloud)",
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
        "--mlperf-clock",
        choices=("time", "instructions"),
        default="time",
        help="what the stored-baseline gate judges: 'time' (CPU or wall time of the rounds), "
        "or 'instructions': after the session, each benchmark's call is counted once under "
        "callgrind (valgrind) and a count that rises by more than 1 %% is a REGRESSION; a "
        "benchmark whose work runs elsewhere stays on time (default: time; one benchmark: "
        "@pytest.mark.mlperf(metric='instructions'))",
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
        help="write latest.json, latest.md (the verdict table) and the history of measured runs, "
        "and the suites' tables and plots, into DIR (default: the mlperf_reports ini option, "
        f"else {DEFAULT_REPORTS_DIR}; nothing is written unless benchmarks were measured)",
    )
    group.addoption(
        "--mlperf-cache",
        metavar="DIR",
        default=None,
        help="where generated data sets are cached "
        f"(default: the mlperf_cache ini option, else {DEFAULT_CACHE_DIR})",
    )
    for name, default, what in (
        ("mlperf_baselines", DEFAULT_BASELINES_DIR, "stored baselines (--mlperf-baselines)"),
        ("mlperf_reports", DEFAULT_REPORTS_DIR, "run files and history (--mlperf-report)"),
        ("mlperf_cache", DEFAULT_CACHE_DIR, "cached data sets (--mlperf-cache)"),
    ):
        parser.addini(name, f"mlperf: directory of {what}, from the rootdir", default=default)


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}" if doc else name)
    # suites pin engine tests to one xdist worker; keep --strict-markers happy with -p no:xdist too
    config.addinivalue_line(
        "markers", "xdist_group(name): run on the xdist worker that owns this group"
    )
    _check_options(config)


def _require_counting() -> None:
    """valgrind and the client requests' hooks, or a usage error with the install lines."""
    import importlib.util

    from mlperf.instructions import ValgrindMissing, require_valgrind

    try:
        require_valgrind()
    except ValgrindMissing as exc:
        raise pytest.UsageError(f"mlperf: {exc}") from None
    if importlib.util.find_spec("pytest_codspeed") is None:
        raise pytest.UsageError(
            "mlperf: the instructions clock issues callgrind's client requests through "
            "pytest-codspeed's prebuilt hooks, which are not installed: pip install "
            '"pytest-mlperf[instructions]"'
        )


def _check_options(config: pytest.Config) -> None:
    """Refuse option combinations that cannot do what the user asked, in one sentence."""
    for option in ("baselines", "reports", "cache"):
        path = gate.directory(config, option)
        if path.exists() and not path.is_dir():
            raise pytest.UsageError(
                f"mlperf's {option} directory {str(path)!r} is a file; give a directory "
                f"(--mlperf-{'report' if option == 'reports' else option} or the "
                f"mlperf_{option} ini option; it is created if missing)."
            )
    if config.getoption("mlperf_require_cloud"):
        config.option.mlperf_cloud = True
    if config.getoption("mlperf_clock") == "instructions":
        _require_counting()

    confirm = config.getoption("mlperf_confirm")
    if confirm < 0:
        raise pytest.UsageError(
            f"--mlperf-confirm={confirm} must be >= 0 (re-measurements of a time REGRESSION; 0 "
            "turns them off)."
        )
    if config.getoption("mlperf_cluster") and not any(os.environ.get(v) for v in _CLUSTER_VARS):
        raise pytest.UsageError(
            "--mlperf-cluster needs the cluster's address: set SPARK_REMOTE, "
            "DASK_SCHEDULER_ADDRESS "
            "and/or RAY_ADDRESS (`python -m mlperf.distributed.cluster up` starts a loopback "
            "cluster and writes them to cluster.env)."
        )


def _skip_reason(item: pytest.Item, config: pytest.Config) -> str | None:
    from mlperf._optional import available, install_hint

    if item.get_closest_marker("mlperf_cloud") and not config.getoption("mlperf_cloud"):
        return (
            "cloud test: spends money on a real account; enable with --mlperf-cloud and credentials"
        )
    if item.get_closest_marker("mlperf_slow") and not config.getoption("mlperf_slow"):
        return "slow variant: enable with --mlperf-slow"
    for engine, (marker, module, _var) in _ENGINES.items():
        if item.get_closest_marker(marker) and not available(module):
            return f"{engine} test: {module!r} is not installed; enable with {install_hint(module)}"
    if item.get_closest_marker("mlperf_cluster"):
        if not config.getoption("mlperf_cluster"):
            return (
                "cluster test: enable with --mlperf-cluster and set SPARK_REMOTE, "
                "DASK_SCHEDULER_ADDRESS or RAY_ADDRESS to the cluster"
            )
        for engine, (marker, _module, var) in _ENGINES.items():
            if item.get_closest_marker(marker) and not os.environ.get(var):
                return f"cluster test for {engine}: set {var} to the cluster's address"
    if item.get_closest_marker("mlperf_gpu") and not _cuda_present():
        return (
            "gpu test: no CUDA device found (needs an NVIDIA GPU and CuPy: "
            "pip install cupy-cuda12x or cupy-cuda13x)"
        )
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
    counted = False
    for item in items:
        if item.get_closest_marker("mlperf"):
            # a bad marker is a usage error even when benchmarks are off
            counted |= gate.settings(item)["metric"] == "instructions"
        reason = _skip_reason(item, config)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    if counted and _recording.benchmarks_enabled(config):
        _require_counting()


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def mlperf_cache_dir(pytestconfig: pytest.Config) -> Path:
    """Directory where generated data sets are cached (``--mlperf-cache``)."""
    path = gate.directory(pytestconfig, "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def mlperf_report_dir(pytestconfig: pytest.Config) -> Path:
    """Directory for tables and plots the suites write (``--mlperf-report``, default reports/)."""
    path = gate.directory(pytestconfig, "reports")
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


def _engine(engine: str) -> None:
    """Skip the requesting test, with the install line, when *engine* cannot be imported."""
    from mlperf._optional import available, install_hint

    module = _ENGINES[engine][1]
    if not available(module):
        pytest.skip(
            f"{engine} fixture: {module!r} is not installed; enable with {install_hint(module)}"
        )


@pytest.fixture(scope="session")
def spark() -> Generator[Any, None, None]:
    """The session's SparkSession: ``local[*]``, or Spark Connect when ``SPARK_REMOTE`` is set."""
    _engine("spark")
    from mlperf.distributed.spark import spark_session

    with spark_session(app_name="mlperf") as session:
        yield session


@pytest.fixture(scope="session")
def dask_client() -> Generator[Any, None, None]:
    """The session's Dask client: a local cluster, or ``DASK_SCHEDULER_ADDRESS``."""
    _engine("dask")
    from mlperf.distributed.dask import dask_client as make_client

    with make_client() as client:
        yield client


@pytest.fixture(scope="session")
def ray_runtime() -> Generator[Any, None, None]:
    """The session's Ray (local, or ``RAY_ADDRESS``); yields the ``ray`` module."""
    _engine("ray")
    from mlperf.distributed.ray import ray_runtime as make_runtime

    with make_runtime() as ray:
        yield ray


# ------------------------------------------------------- delegated to the gate


def _codspeed_active(config: pytest.Config) -> bool:
    """pytest-codspeed measures this session (``--codspeed``): mlperf stays out of its way."""
    return bool(getattr(config.option, "codspeed", False))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    fixture = _recording.measured_fixture(item)
    if (
        fixture is None
        and _recording.whole_call(item)
        and _recording.benchmarks_enabled(item.config)
        and not _codspeed_active(item.config)
    ):
        fixture = _recording.whole_call_fixture(item)
    if fixture is None:
        return (yield)
    settings = gate.settings(item)
    sink = _recording.start(item, fixture, settings)
    result = yield  # raises when the test failed: then nothing is recorded
    item.config.stash.setdefault(_recording.RECORDER_KEY, _recording.Recorder()).add(
        item, fixture, settings, sink
    )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if (
        report.skipped
        and item.config.getoption("mlperf_require_cloud")
        and item.get_closest_marker("mlperf_cloud")
    ):
        longrepr = report.longrepr
        why = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"--mlperf-require-cloud: {item.nodeid} would have been skipped ({why}); a cloud "
            "test without its credentials fails the run instead (set the credentials the "
            "reason names, or drop --mlperf-require-cloud)"
        )
    return report


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if config.getoption("mlperf_save_baseline") and not _recording.benchmarks_enabled(config):
        why = _recording.correctness_mode(config) or "--benchmark-skip"
        raise pytest.UsageError(
            f"--mlperf-save-baseline needs measured benchmarks, but pytest-benchmark is off "
            f"({why}): add --benchmark-enable (it wins over --benchmark-disable in addopts) "
            "and run without -n."
        )
    gate.load_baselines(session)


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    result = yield
    if not (session.shouldfail or session.shouldstop):
        gate.remeasure_regressions(session)
        gate.count_instructions(session)
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(
    session: pytest.Session, exitstatus: int
) -> Generator[None, object, object]:
    # Before pytest-benchmark's own wrapper writes its JSON: mlperf's numbers go into it.
    gate.finish(session)
    return (yield)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    why = _recording.correctness_mode(config)
    quiet = config.option.verbose <= 0 or config.option.collectonly or _codspeed_active(config)
    if why is not None and not quiet and not hasattr(config, "workerinput"):
        terminalreporter.write_line(
            f"mlperf: correctness mode ({why}): benchmark bodies ran once, untimed; nothing was "
            "measured or gated (pytest --benchmark-enable, without -n, measures)."
        )
    run = config.stash.get(gate.GATE_KEY, gate.GateState()).run
    if not run:
        return
    stale = _installed_elsewhere(config.rootpath)
    if stale:
        name, where = stale
        terminalreporter.write_line(
            f"mlperf: warning: this project's {name} was imported from {where}, outside "
            f"{config.rootpath}: the benchmarks measured an installed copy, not this "
            "checkout's code (install it editable: pip install -e .)",
            yellow=True,
        )
    from mlperf.report.latest import write_terminal

    write_terminal(terminalreporter, run, no_gate=config.getoption("mlperf_no_gate"))
    if run["gate"].get("error"):
        terminalreporter.write_line(f"mlperf: {run['gate']['error']}", red=True, bold=True)
    missing = run["gate"].get("missing") or []
    if missing:
        terminalreporter.write_line(
            f"mlperf: {len(missing)} benchmark(s) have no stored baseline for "
            f"{run['machine_id']} and --mlperf-require-baseline is set: record them on this "
            "machine with `pytest --benchmark-enable --mlperf-save-baseline` (or "
            "`mlperf baseline save`), and commit the baselines folder",
            red=True,
            bold=True,
        )


def _installed_elsewhere(root: Path) -> tuple[str, str] | None:
    """(module, file) of the first of the project's own modules imported from outside *root*."""
    from mlperf.project import discover, find_project_dir, foreign_modules

    project = find_project_dir(root, root)
    if project is None:
        return None
    found = foreign_modules(sorted(discover(project).modules), [str(root)])
    return found[0] if found else None


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

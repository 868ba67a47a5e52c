"""The mlperf pytest plugin: hooks, options, markers and fixtures.

Loaded through the ``pytest11`` entry point.  Importing it must stay cheap: no
engine, SDK, numba or matplotlib import happens here.  The hooks delegate: what the
options and markers mean (option checks, skip reasons, directories, per-benchmark
settings) is :mod:`mlperf.options`, the recording of rounds (everything that touches
pytest-benchmark's internals) :mod:`mlperf._recording`, the verdicts and
re-measurements :mod:`mlperf.gate`, the run files and the terminal table
:mod:`mlperf.report.latest` and :mod:`mlperf.report.terminal`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlperf import _recording, gate, options
from mlperf._args import number
from mlperf.options import (
    _ENGINES,
    _check_options,
    _keep_xdist_groups,
    _require_counting,
    _skip_reason,
)
from mlperf.records import (
    DEFAULT_BASELINES_DIR,
    DEFAULT_CACHE_DIR,
    DEFAULT_COUNT_THRESHOLD,
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
        "callgrind (valgrind) and a count that rises by more than --mlperf-count-threshold "
        "is a REGRESSION; a "
        "benchmark whose work runs elsewhere stays on time (default: time; one benchmark: "
        "@pytest.mark.mlperf(metric='instructions'))",
    )
    group.addoption(
        "--mlperf-count-threshold",
        metavar="FRACTION",
        type=number(float, 0, inclusive=True),
        default=DEFAULT_COUNT_THRESHOLD,
        help="instruction clock: a count more than this fraction above the baseline's is a "
        f"REGRESSION (default: {DEFAULT_COUNT_THRESHOLD:g})",
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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _keep_xdist_groups(config, items)
    counted = False
    for item in items:
        if item.get_closest_marker("mlperf"):
            # a bad marker is a usage error even when benchmarks are off
            counted |= options.settings(item)["metric"] == "instructions"
        reason = _skip_reason(item, config)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
    if counted and _recording.benchmarks_enabled(config):
        _require_counting()


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def mlperf_cache_dir(pytestconfig: pytest.Config) -> Path:
    """Directory where generated data sets are cached (``--mlperf-cache``)."""
    path = options.directory(pytestconfig, "cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def mlperf_report_dir(pytestconfig: pytest.Config) -> Path:
    """Directory for tables and plots the suites write (``--mlperf-report``, default reports/)."""
    path = options.directory(pytestconfig, "reports")
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
    settings = options.settings(item)
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
    from mlperf.report.terminal import write_summary

    write_summary(terminalreporter, config, run)

"""What mlperf's options and markers mean, for the plugin's hooks and the gate.

Where mlperf's directories are (:func:`directory`), the gate settings a benchmark's
``@pytest.mark.mlperf`` gives (:func:`settings`), the refusal of option combinations
that cannot work, why a marked test is skipped on this machine, and the fix that keeps
``--dist loadgroup``'s groups on one xdist worker.  Importing it stays cheap: the
plugin imports it at load.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlperf import records

if TYPE_CHECKING:
    from mlperf.records import Settings

__all__ = ["directory", "root_path", "settings"]


def settings(item: pytest.Item) -> Settings:
    """The gate settings of *item*: its ``@pytest.mark.mlperf(...)`` over the defaults.

    Raises
    ------
    pytest.UsageError
        A positional argument, an unknown keyword, or a value out of range.
    """
    marker = item.get_closest_marker("mlperf")
    defaults: Settings = {
        "metric": records.DEFAULT_METRIC,
        "max_regression": records.DEFAULT_MAX_REGRESSION,
        "max_memory_regression": records.DEFAULT_MAX_MEMORY_REGRESSION,
        "memory": True,
    }
    if marker is None:
        return defaults
    if marker.args:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.mlperf takes keywords only, got {marker.args!r}"
        )
    unknown = set(marker.kwargs) - set(defaults)
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown @pytest.mark.mlperf keyword(s) {sorted(unknown)}; "
            f"known: {sorted(defaults)}"
        )
    opts: dict[str, Any] = {**defaults, **marker.kwargs}
    if opts["metric"] not in ("cpu", "wall", "instructions"):
        raise pytest.UsageError(
            f"{item.nodeid}: mlperf metric must be 'cpu', 'wall' or 'instructions', "
            f"got {opts['metric']!r}"
        )
    for key in ("max_regression", "max_memory_regression"):
        value = opts[key]
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and value >= 0):  # NaN would turn the gate off
            raise pytest.UsageError(
                f"{item.nodeid}: mlperf {key} must be a finite number >= 0 (0.25 means 25 %), "
                f"got {value!r}"
            )
    return {
        "metric": opts["metric"],
        "max_regression": opts["max_regression"],
        "max_memory_regression": opts["max_memory_regression"],
        "memory": opts["memory"],
    }


def root_path(config: pytest.Config, value: str) -> Path:
    """*value* as an absolute path, relative ones taken from pytest's root directory."""
    path = Path(value)
    return path if path.is_absolute() else config.rootpath / path


def directory(config: pytest.Config, option: str) -> Path:
    """Where one of mlperf's directories is: the command-line option, else the ini option.

    *option* is ``baselines``, ``reports`` or ``cache``; relative paths are taken
    from pytest's rootdir.
    """
    flag = {"baselines": "mlperf_baselines", "reports": "mlperf_report", "cache": "mlperf_cache"}
    value = config.getoption(flag[option]) or config.getini(f"mlperf_{option}")
    return root_path(config, str(value))


#: engine -> (its marker, module to probe, the variable that points it at a cluster)
_ENGINES = {
    "spark": ("mlperf_spark", "pyspark", "SPARK_REMOTE"),
    "dask": ("mlperf_dask", "distributed", "DASK_SCHEDULER_ADDRESS"),
    "ray": ("mlperf_ray", "ray", "RAY_ADDRESS"),
}
_CLUSTER_VARS = [var for _marker, _module, var in _ENGINES.values()]


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
        path = directory(config, option)
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

"""Who measured: machine identity, the instruction-count key, package versions, the commit.

A baseline is kept per machine (:func:`machine_id`), or for instruction counts per
what decides a count (:func:`count_key`); every file also records the
:func:`environment` and the commit it was recorded at.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlperf.records import Environment, MachineInfo

__all__ = [
    "TRACKED_PACKAGES",
    "count_key",
    "current_commit",
    "environment",
    "id_of",
    "machine_id",
    "machine_info",
    "slug",
]

#: packages whose versions go into every result and baseline file
TRACKED_PACKAGES = (
    "numpy",
    "pandas",
    "pyarrow",
    "numba",
    "scikit-learn",
    "pyspark",
    "dask",
    "distributed",
    "ray",
    "duckdb",
    "polars",
    "h5py",
    "tables",
    "pytest-benchmark",
    "sagemaker",
    "google-cloud-aiplatform",
    "azure-ai-ml",
    "mlperf",
)


def slug(text: str) -> str:
    """*text* as a lower-case, dash-separated name (for ids and file names)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


@functools.cache
def _cpu_model() -> str:
    """The CPU's brand string, as py-cpuinfo (pytest-benchmark's own dependency) reads it
    on every OS; ``/proc/cpuinfo`` or the platform module where py-cpuinfo says nothing."""
    with contextlib.suppress(Exception):  # py-cpuinfo missing or failing on an odd platform
        import cpuinfo

        brand = str(cpuinfo.get_cpu_info().get("brand_raw") or "").strip()
        if brand:
            return brand
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info() -> MachineInfo:
    """What identifies this machine for timing purposes (no host names, no users)."""
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count() or 0,
        "os": platform.system(),
        "arch": platform.machine(),
        "python": platform.python_version(),
    }


def machine_id(info: MachineInfo | None = None) -> str:
    """Stable, readable fingerprint: ``<cpu>-<cores>c-<os>-py<major><minor>``.

    ``MLPERF_MACHINE_ID`` overrides it (e.g. to share baselines between identical
    CI runners whose CPU strings differ only in stepping).
    """
    override = os.environ.get("MLPERF_MACHINE_ID")
    if override:
        return slug(override)
    return id_of(info or machine_info())


def id_of(info: MachineInfo) -> str:
    """The machine id of *info* (another machine's, from a file), without the override."""
    py = "".join(info["python"].split(".")[:2])
    return f"{slug(info['cpu'])}-{info['logical_cores']}c-{slug(info['os'])}-py{py}"


def count_key() -> str:
    """Where instruction-count baselines live: what decides a count, not the CPU model.

    ``instructions-<arch>-py<major><minor>-<hash>``, the hash over the versions of
    :data:`TRACKED_PACKAGES`, of mlperf itself (its counting code is part of every
    count) and of the counting method (:data:`mlperf.instructions.COUNT_METHOD`: what
    a count leaves out).  valgrind runs every x86-64 host as the same CPU, so one recorded baseline
    gates another machine of that architecture; ``MLPERF_COUNT_KEY`` overrides it.
    """
    override = os.environ.get("MLPERF_COUNT_KEY")
    if override:
        return slug(override)
    from mlperf import __version__
    from mlperf.instructions._callgrind import COUNT_METHOD

    env = environment()
    versions = json.dumps([sorted(env["packages"].items()), __version__, COUNT_METHOD])
    digest = hashlib.sha256(versions.encode()).hexdigest()[:10]
    py = "".join(env["python"].split(".")[:2])
    return slug(f"instructions-{platform.machine()}-py{py}-{digest}")


def environment() -> Environment:
    """Python version and the installed versions of :data:`TRACKED_PACKAGES` (none imported)."""
    packages = {}
    for name in TRACKED_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    return {"python": platform.python_version(), "packages": packages}


def current_commit(root: Path | str = ".") -> str | None:
    """``git rev-parse HEAD`` of *root* (suffixed ``-dirty`` when the tree has changes), or None."""
    try:
        head = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def _git(root: Path | str, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()

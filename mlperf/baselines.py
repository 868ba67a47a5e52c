"""Machine identity and versioned, per-machine baseline files.

Layout: ``<baselines>/<machine-id>/<suite>.json``.  A file holds, per benchmark,
the summary *and* the round samples of CPU and wall time (the gate's rank test
needs samples, not just a median) plus the peak memory of one extra round.
Writes are atomic (temp file + rename) under an exclusive lock, so several
processes recording different benchmarks of one suite lose nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from mlperf.records import (
        BaselineEntry,
        BaselineFile,
        BenchmarkRecord,
        ClockSummary,
        Environment,
        MachineInfo,
    )

__all__ = [
    "SCHEMA_VERSION",
    "BaselineError",
    "baseline_path",
    "current_commit",
    "entry_of",
    "environment",
    "known_elsewhere",
    "load_file",
    "load_machine",
    "machine_id",
    "machine_info",
    "save_records",
    "suite_of",
]

SCHEMA_VERSION = 1
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
#: what a baseline keeps of a benchmark record
_ENTRY_KEYS = ("metric", "cpu", "wall", "memory")
#: samples kept per benchmark and clock (evenly thinned beyond this)
MAX_SAMPLES = 200
FIX_HINT = (
    "re-record it with `make baseline` (pytest suites --benchmark-enable --mlperf-save-baseline)"
)


class BaselineError(Exception):
    """A baseline file that cannot be used; the message names the file and the fix."""


def _slug(text: str) -> str:
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
        return _slug(override)
    info = info or machine_info()
    py = "".join(info["python"].split(".")[:2])
    return f"{_slug(info['cpu'])}-{info['logical_cores']}c-{_slug(info['os'])}-py{py}"


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


def suite_of(nodeid: str) -> str:
    """Suite name of a benchmark id: ``suites/compute/test_x.py::t`` -> ``compute``."""
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) >= 3 and parts[0] == "suites":
        return parts[1]
    return _slug(Path(parts[-1]).stem.removeprefix("test_")) if parts[-1] else "default"


def baseline_path(root: Path | str, machine: str, suite: str) -> Path:
    return Path(root) / machine / f"{suite}.json"


def load_file(path: Path | str) -> BaselineFile:
    """Read and validate one baseline file.

    Raises
    ------
    BaselineError
        If the file is not JSON, not a baseline file, or of an unknown schema version.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(
            f"baseline file {str(path)!r} is unreadable or corrupt ({exc}); {FIX_HINT}"
        ) from exc
    if not isinstance(data, dict) or data.get("kind") != "mlperf-baseline":
        raise BaselineError(
            f"{str(path)!r} is not an mlperf baseline file; delete it or {FIX_HINT}"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        fix = "upgrade mlperf (pip install -U pytest-mlperf) to read it" if newer else FIX_HINT
        raise BaselineError(
            f"baseline file {str(path)!r} has schema_version {version!r}; this mlperf reads "
            f"version {SCHEMA_VERSION}; {fix}"
        )
    if not isinstance(data.get("benchmarks"), dict):
        raise BaselineError(f"baseline file {str(path)!r} has no 'benchmarks' mapping; {FIX_HINT}")
    return cast("BaselineFile", data)


def load_machine(root: Path | str, machine: str) -> dict[str, BaselineEntry]:
    """All stored benchmarks of *machine*: ``{benchmark id: entry}`` (empty if none)."""
    entries: dict[str, BaselineEntry] = {}
    folder = Path(root) / machine
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            entries.update(load_file(path)["benchmarks"])
    return entries


def known_elsewhere(root: Path | str, machine: str) -> set[str]:
    """Benchmark ids that have baselines only for other machines (file contents not validated)."""
    ids: set[str] = set()
    base = Path(root)
    if not base.is_dir():
        return ids
    for folder in base.iterdir():
        if folder.is_dir() and folder.name != machine:
            for path in folder.glob("*.json"):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    ids.update(json.loads(path.read_text(encoding="utf-8")).get("benchmarks", {}))
    return ids


def entry_of(record: BenchmarkRecord) -> BaselineEntry:
    """The part of a benchmark record a baseline keeps: metric, clocks and peak memory."""
    return cast("BaselineEntry", {k: v for k, v in record.items() if k in _ENTRY_KEYS})


def thin(samples: list[float], limit: int = MAX_SAMPLES) -> list[float]:
    """Keep at most *limit* samples, evenly spaced in recording order."""
    if len(samples) <= limit:
        return list(samples)
    step = len(samples) / limit
    return [samples[int(i * step)] for i in range(limit)]


def _thinned(summary: ClockSummary) -> ClockSummary:
    return {**summary, "samples": thin(summary.get("samples", []))}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True, ensure_ascii=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_records(
    root: Path | str,
    records: Iterable[BenchmarkRecord],
    *,
    machine: str | None = None,
    commit: str | None = None,
) -> list[Path]:
    """Merge benchmark *records* into this machine's baseline files, one per suite.

    Each record needs ``id``, ``metric``, ``cpu``, ``wall`` (summaries with
    ``samples``) and ``memory``.  Benchmarks not in *records* keep their stored
    entries.  Returns the files written.
    """
    machine = machine or machine_id()
    by_suite: dict[str, dict[str, BaselineEntry]] = {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for rec in records:
        entry = entry_of(rec)
        if "cpu" in entry:
            entry["cpu"] = _thinned(entry["cpu"])
        if "wall" in entry:
            entry["wall"] = _thinned(entry["wall"])
        entry["recorded"] = now
        by_suite.setdefault(rec.get("suite") or suite_of(rec["id"]), {})[rec["id"]] = entry
    written = []
    for suite, entries in sorted(by_suite.items()):
        path = baseline_path(root, machine, suite)
        with _locked(path):
            data: dict[str, Any] = dict(load_file(path)) if path.exists() else {"benchmarks": {}}
            data.update(
                schema_version=SCHEMA_VERSION,
                kind="mlperf-baseline",
                machine_id=machine,
                machine=machine_info(),
                suite=suite,
                commit=commit,
                environment=environment(),
                updated=now,
            )
            data["benchmarks"].update(entries)
            _atomic_write(path, data)
        written.append(path)
    return written

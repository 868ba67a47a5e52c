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
import hashlib
import json
import math
import os
import platform
import re
import shlex
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
    "entry_problem",
    "environment",
    "fix_hint",
    "from_pytest_benchmark",
    "id_of",
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
_ENTRY_KEYS = ("metric", "cpu", "wall", "memory", "instructions")
#: samples kept per benchmark and clock (evenly thinned beyond this)
MAX_SAMPLES = 200
#: how a baseline is recorded (the plugin's own flags; works in any project)
RECORD_COMMAND = "pytest --benchmark-enable --mlperf-save-baseline"
#: the clocks and the metric names an entry may hold
_CLOCKS = ("cpu", "wall")
_SUMMARY_NUMBERS = ("n", "median", "iqr", "min", "mean")


def fix_hint(path: Path | str) -> str:
    """How to replace an unusable baseline file: remove it, then record it again.

    Recording alone cannot: saving merges into the stored file, so it reads the same
    file first and fails with the same error (as does the session that would record).
    """
    return (
        f"remove it with `rm {shlex.quote(str(path))}` and record it again "
        f"with `{RECORD_COMMAND}` (plus the --mlperf-baselines you use, if any)"
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
    return id_of(info or machine_info())


def id_of(info: MachineInfo) -> str:
    """The machine id of *info* (another machine's, from a file), without the override."""
    py = "".join(info["python"].split(".")[:2])
    return f"{_slug(info['cpu'])}-{info['logical_cores']}c-{_slug(info['os'])}-py{py}"


def count_key() -> str:
    """Where instruction-count baselines live: what decides a count, not the CPU model.

    ``instructions-<arch>-py<major><minor>-<hash>``, the hash over the versions of
    :data:`TRACKED_PACKAGES` and of mlperf itself (its counting code is part of every
    count).  valgrind runs every x86-64 host as the same CPU, so one recorded baseline
    gates another machine of that architecture; ``MLPERF_COUNT_KEY`` overrides it.
    """
    override = os.environ.get("MLPERF_COUNT_KEY")
    if override:
        return _slug(override)
    from mlperf import __version__

    env = environment()
    versions = json.dumps([sorted(env["packages"].items()), __version__])
    digest = hashlib.sha256(versions.encode()).hexdigest()[:10]
    py = "".join(env["python"].split(".")[:2])
    return _slug(f"instructions-{platform.machine()}-py{py}-{digest}")


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
    """Read and validate one baseline file, every entry included.

    Raises
    ------
    BaselineError
        If the file is not JSON, not a baseline file, of an unknown schema version, or
        holds an entry the gate cannot read; the message names the file (and the
        entry) and the command that replaces it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(
            f"baseline file {str(path)!r} is unreadable or corrupt ({exc}); {fix_hint(path)}"
        ) from None
    if not isinstance(data, dict) or data.get("kind") != "mlperf-baseline":
        raise BaselineError(
            f'{str(path)!r} is not an mlperf baseline file (no "kind": "mlperf-baseline"); '
            f"{fix_hint(path)}"
        )
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        fix = (
            "upgrade mlperf (pip install -U pytest-mlperf) to read it" if newer else fix_hint(path)
        )
        raise BaselineError(
            f"baseline file {str(path)!r} has schema_version {version!r}; this mlperf reads "
            f"version {SCHEMA_VERSION}; {fix}"
        )
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, dict):
        raise BaselineError(
            f"baseline file {str(path)!r} has no 'benchmarks' mapping (got "
            f"{_short(benchmarks)}); {fix_hint(path)}"
        )
    for bid, entry in benchmarks.items():
        problem = entry_problem(entry)
        if problem:
            raise BaselineError(
                f"baseline file {str(path)!r}, entry {bid!r}: {problem}; {fix_hint(path)}"
            )
    return cast("BaselineFile", data)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: object, *, finite_non_negative: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not finite_non_negative or (math.isfinite(value) and value >= 0)


def entry_problem(entry: object) -> str | None:
    """What makes a baseline *entry* unusable by the gate, ``mlperf baseline show`` or
    ``diff`` (a sentence), or None when it is usable."""
    if not isinstance(entry, dict):
        return f"an entry must be a mapping of metric, clocks and memory; got {_short(entry)}"
    metric = entry.get("metric")
    if metric is not None and metric not in (*_CLOCKS, "instructions"):
        return f"'metric' must be one of {(*_CLOCKS, 'instructions')!r}; got {_short(metric)}"
    counted = entry.get("instructions")
    if counted is not None and not (
        isinstance(counted, dict) and isinstance(counted.get("ir"), int) and counted["ir"] >= 0
    ):
        return f"'instructions' must be a mapping with an 'ir' count >= 0; got {_short(counted)}"
    for clock in _CLOCKS:
        summary = entry.get(clock)
        if summary is None:
            continue
        if not isinstance(summary, dict):
            return f"{clock!r} must be a mapping (median, samples ...); got {_short(summary)}"
        samples = summary.get("samples", [])
        if not isinstance(samples, list):
            return f"{clock!r} samples must be a list of seconds; got {_short(samples)}"
        bad = [x for x in samples if not _is_number(x, finite_non_negative=True)]
        if bad:
            return f"{clock!r} samples must be finite numbers >= 0 (seconds); got {_short(bad[:3])}"
        for key in _SUMMARY_NUMBERS:
            if key in summary and summary[key] is not None and not _is_number(summary[key]):
                return f"{clock!r} {key} must be a number; got {_short(summary[key])}"
    memory = entry.get("memory")
    if memory is not None:
        if not isinstance(memory, dict):
            return f"'memory' must be a mapping (peak, python, rss) or null; got {_short(memory)}"
        for key in ("peak", "python", "rss"):
            value = memory.get(key)
            if value is not None and not _is_number(value, finite_non_negative=True):
                return f"'memory' {key} must be a number of bytes >= 0; got {_short(value)}"
    return None


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
                with contextlib.suppress(OSError, ValueError):
                    data = json.loads(path.read_text(encoding="utf-8"))
                    benchmarks = data.get("benchmarks") if isinstance(data, dict) else None
                    if isinstance(benchmarks, dict):
                        ids.update(benchmarks)
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
        try:
            with _locked(path):
                data: dict[str, Any] = (
                    dict(load_file(path)) if path.exists() else {"benchmarks": {}}
                )
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
        except OSError as exc:
            raise BaselineError(
                f"cannot write baselines to {str(root)!r}: {path.parent} is not a writable "
                f"directory ({exc.strerror or exc}); pass --mlperf-baselines=DIR (or set "
                "mlperf_baselines in your pytest configuration) to a directory you can write, "
                "or move away what is in the way"
            ) from None
        written.append(path)
    return written


def from_pytest_benchmark(data: dict[str, Any], path: Path) -> tuple[dict[str, BaselineEntry], str]:
    """The benchmarks and machine id of a pytest-benchmark JSON file (``--benchmark-json``,
    ``--benchmark-autosave``), as baseline entries on the ``wall`` clock: its rounds are
    pytest-benchmark's timer (wall time per call), which is all such a file holds.

    Raises
    ------
    BaselineError
        When a benchmark has no per-round times (the file was saved without
        ``--benchmark-save-data``: an interval needs the rounds, not only their summary).
    """
    entries: dict[str, BaselineEntry] = {}
    for bench in data.get("benchmarks") or []:
        name = bench.get("fullname") or bench.get("name") if isinstance(bench, dict) else None
        stats = bench.get("stats") if isinstance(bench, dict) else None
        if not isinstance(name, str) or not isinstance(stats, dict):
            raise BaselineError(
                f"pytest-benchmark file {str(path)!r} has a benchmark without 'fullname' and "
                f"'stats' ({_short(bench)}); write it again with pytest --benchmark-json"
            )
        samples = stats.get("data")
        if not isinstance(samples, list) or not samples:
            raise BaselineError(
                f"pytest-benchmark file {str(path)!r}, benchmark {name!r}: no per-round times "
                "('stats.data'), so no interval can be computed; write it with "
                "pytest --benchmark-json FILE, or --benchmark-autosave --benchmark-save-data"
            )
        summary = {k: stats.get(k) for k in ("median", "iqr", "min", "mean")}
        entry = {"metric": "wall", "wall": {"n": len(samples), **summary, "samples": samples}}
        problem = entry_problem(entry)
        if problem:
            raise BaselineError(
                f"pytest-benchmark file {str(path)!r}, benchmark {name!r}: {problem}"
            )
        entries[name] = cast("BaselineEntry", entry)
    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    info: MachineInfo = {
        "cpu": str(
            cpu.get("brand_raw") or machine.get("processor") or machine.get("machine") or "?"
        ),
        "logical_cores": int(cpu.get("count") or 0),
        "os": str(machine.get("system") or "?"),
        "arch": str(machine.get("machine") or "?"),
        "python": str(machine.get("python_version") or "0.0"),
    }
    return entries, id_of(info)

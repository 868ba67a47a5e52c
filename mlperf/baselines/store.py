"""The baseline files of a machine: ``<baselines>/<machine-id>/<suite>.json``.

Loading all of a machine's entries, and saving benchmark records into them: each
save merges into the stored file, atomically (temp file + rename) under an
exclusive lock, so several processes recording one suite lose nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlperf.baselines.machine import environment, machine_id, machine_info, slug
from mlperf.baselines.schema import SCHEMA_VERSION, BaselineError, load_file

if TYPE_CHECKING:
    from mlperf.records import BaselineEntry, BenchmarkRecord, ClockSummary

__all__ = [
    "MAX_SAMPLES",
    "baseline_path",
    "entry_of",
    "known_elsewhere",
    "load_machine",
    "save_records",
    "suite_of",
    "thin",
]

#: what a baseline keeps of a benchmark record
_ENTRY_KEYS = ("metric", "cpu", "wall", "memory", "instructions")
#: samples kept per benchmark and clock (evenly thinned beyond this)
MAX_SAMPLES = 200


def suite_of(nodeid: str) -> str:
    """Suite name of a benchmark id: ``suites/compute/test_x.py::t`` -> ``compute``."""
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) >= 3 and parts[0] == "suites":
        return parts[1]
    return slug(Path(parts[-1]).stem.removeprefix("test_")) if parts[-1] else "default"


def baseline_path(root: Path | str, machine: str, suite: str) -> Path:
    return Path(root) / machine / f"{suite}.json"


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

"""One baseline file: its schema version, what makes an entry usable, and reading it.

:func:`load_file` reads and checks one of mlperf's files; :func:`from_pytest_benchmark`
reads a pytest-benchmark JSON file as baseline entries.  An unusable file raises
:class:`BaselineError`, whose message names the file and the command that replaces it
(:func:`fix_hint`).
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlperf.baselines.machine import id_of

if TYPE_CHECKING:
    from mlperf.records import BaselineEntry, BaselineFile, MachineInfo

__all__ = [
    "RECORD_COMMAND",
    "SCHEMA_VERSION",
    "BaselineError",
    "entry_problem",
    "fix_hint",
    "from_pytest_benchmark",
    "load_file",
]

SCHEMA_VERSION = 1
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

"""The machine's history keyed by commit: ``reports/history/<machine-id>.jsonl``.

Each measured session appends one line (:func:`append_history`): the commit, its
parent, date and subject, and per benchmark both clocks' medians and spreads, the
peak memory and the time verdict.  Reading it back (:func:`load_series`), the runs
of one commit become one point whose value is the median of their medians, so
four runs of a commit are one point with its spread, never four commits.  Commits
are ordered by commit date (the first run breaks ties); runs of an uncommitted
tree (``-dirty``) belong to no commit and are counted, not plotted.

Lines written before this format (whole run records, ``kind: mlperf-run``) are
read too: their commit's parent and date are then unknown and their run time
stands in for the date.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from mlperf._args import One
from mlperf.records import DEFAULT_METRIC, DEFAULT_REPORTS_DIR, RUN_KIND

if TYPE_CHECKING:
    from mlperf.records import BenchmarkRecord, ClockSummary, RunRecord

__all__ = [
    "HISTORY_KIND",
    "HISTORY_SCHEMA_VERSION",
    "ClockPoint",
    "CommitInfo",
    "HistoryBenchmark",
    "HistoryLine",
    "Point",
    "Series",
    "add_source_arguments",
    "append_history",
    "commit_info",
    "history_line",
    "load_series",
    "read_history",
]

HISTORY_KIND = "mlperf-history"
HISTORY_SCHEMA_VERSION = 1


class CommitInfo(TypedDict):
    """The commit a run measured (``sha`` without ``-dirty``; the rest None when unknown)."""

    sha: str
    dirty: bool
    parent: str | None
    date: str | None
    subject: str | None


class ClockPoint(TypedDict):
    """One clock of one benchmark in one run, seconds per call."""

    median: float
    iqr: float
    min: float
    n: int


class HistoryBenchmark(TypedDict):
    """One benchmark of one run in the history (``instructions`` once they are counted)."""

    id: str
    suite: str
    metric: str
    wall: ClockPoint
    cpu: NotRequired[ClockPoint]
    peak_memory: int | None
    verdict: str | None
    instructions: NotRequired[int]


class HistoryLine(TypedDict):
    """One line of ``reports/history/<machine-id>.jsonl``: one measured session."""

    kind: str
    schema_version: int
    machine_id: str
    created: str
    commit: CommitInfo | None
    environment: dict[str, Any]
    benchmarks: list[HistoryBenchmark]


def add_source_arguments(parser: argparse.ArgumentParser, reports_holds: str, machine: str) -> None:
    """``--reports`` and ``--machine``: where ``mlperf report`` and ``mlperf history`` read."""
    parser.add_argument(
        "--reports",
        default=None,
        action=One,
        metavar="DIR",
        help=f"report directory with {reports_holds} (default: the mlperf_reports ini option "
        f"of your pytest configuration, else {DEFAULT_REPORTS_DIR})",
    )
    parser.add_argument(
        "--machine", default=None, action=One, help=f"machine id (default: {machine})"
    )


def commit_info(commit: str | None, repo: Path | str | None = ".") -> CommitInfo | None:
    """The commit's parent, date and subject from git (None fields when *repo* cannot say).

    Parameters
    ----------
    commit:
        A run record's commit: a sha, possibly suffixed ``-dirty``; None when not in git.
    repo:
        A directory inside the repository; None to ask nothing of git.

    Returns
    -------
    CommitInfo or None
        None when *commit* is None.
    """
    if not commit:
        return None
    sha, dirty = commit.removesuffix("-dirty"), commit.endswith("-dirty")
    info: CommitInfo = {"sha": sha, "dirty": dirty, "parent": None, "date": None, "subject": None}
    if repo is None:
        return info
    try:
        out = subprocess.run(
            ["git", "show", "-s", "--format=%P%n%cI%n%s", sha],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return info
    if len(out) >= 3:
        info["parent"] = out[0].split(" ")[0] or None  # the first parent: the branch's history
        info["date"] = out[1] or None
        info["subject"] = out[2][:200] or None
    return info


def _clock(summary: ClockSummary | None) -> ClockPoint | None:
    if not summary:
        return None
    return {
        "median": summary["median"],
        "iqr": summary.get("iqr", 0.0),
        "min": summary.get("min", summary["median"]),
        "n": summary.get("n", 0),
    }


def _benchmark(rec: BenchmarkRecord) -> HistoryBenchmark:
    memory, verdict = rec.get("memory"), rec.get("verdict")
    out: HistoryBenchmark = {
        "id": rec["id"],
        "suite": rec.get("suite", "?"),
        "metric": rec.get("metric", DEFAULT_METRIC),
        "wall": _clock(rec.get("wall")) or {"median": 0.0, "iqr": 0.0, "min": 0.0, "n": 0},
        "peak_memory": memory.get("peak") if memory else None,
        "verdict": verdict.get("time") if verdict else None,
    }
    cpu = _clock(rec.get("cpu"))
    if cpu is not None:
        out["cpu"] = cpu
    instructions = dict(rec).get("instructions")  # once the run record counts them
    if isinstance(instructions, int | float):
        out["instructions"] = int(instructions)
    return out


def history_line(run: RunRecord, repo: Path | str | None = ".") -> HistoryLine:
    """The history line of a run record: its commit (with parent and date) and per-benchmark points.

    Parameters
    ----------
    run:
        The session's run record (``reports/latest.json``).
    repo:
        A directory inside the measured repository, asked for the commit's parent, date and
        subject; None to leave them unknown.

    Returns
    -------
    HistoryLine
        What :func:`append_history` writes.
    """
    return {
        "kind": HISTORY_KIND,
        "schema_version": HISTORY_SCHEMA_VERSION,
        "machine_id": run["machine_id"],
        "created": run["created"],
        "commit": commit_info(run.get("commit"), repo),
        "environment": dict(run.get("environment") or {}),
        "benchmarks": [_benchmark(rec) for rec in run["benchmarks"]],
    }


def append_history(reports: Path | str, run: RunRecord, repo: Path | str | None = ".") -> Path:
    """Append the run's :func:`history_line` to ``<reports>/history/<machine-id>.jsonl``.

    Parameters
    ----------
    reports:
        The report directory (``--mlperf-report``).
    run:
        The session's run record.
    repo:
        A directory inside the measured repository (the pytest root), for the commit's parent,
        date and subject.

    Returns
    -------
    Path
        The history file.
    """
    path = Path(reports) / "history" / f"{run['machine_id']}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(history_line(run, repo), ensure_ascii=False, separators=(",", ":"))
    with open(path, "a", encoding="utf-8") as fh:  # one write: a killed run tears one line only
        fh.write(line + "\n")
    return path


def _from_run(data: dict[str, Any]) -> HistoryLine:
    """A line of the former format (a run record without samples) in today's shape."""
    return {
        "kind": HISTORY_KIND,
        "schema_version": HISTORY_SCHEMA_VERSION,
        "machine_id": data.get("machine_id", "?"),
        "created": str(data.get("created", "")),
        "commit": commit_info(data.get("commit"), None),
        "environment": data.get("environment") or {},
        "benchmarks": [
            _benchmark(cast("BenchmarkRecord", rec))
            for rec in data.get("benchmarks", [])
            if isinstance(rec, dict) and "id" in rec
        ],
    }


def read_history(reports: Path | str, machine: str) -> tuple[list[HistoryLine], int]:
    """Every readable line of the machine's history file, oldest first, and the bad lines' count.

    A torn last line (a run killed mid-write), a line of another kind or of a newer
    schema is skipped and counted, so one bad line never hides the rest.
    """
    path = Path(reports) / "history" / f"{machine}.jsonl"
    lines: list[HistoryLine] = []
    bad = 0
    if not path.is_file():
        return lines, bad
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            bad += 1
            continue
        kind = data.get("kind") if isinstance(data, dict) else None
        if (
            kind == HISTORY_KIND
            and data.get("schema_version") == HISTORY_SCHEMA_VERSION
            and isinstance(data.get("benchmarks"), list)
        ):
            lines.append(data)
        elif kind == RUN_KIND:
            lines.append(_from_run(data))
        else:
            bad += 1
    return lines, bad


@dataclass
class Point:
    """One commit of one benchmark: the median of its runs' medians, and their spread.

    ``value`` is on the benchmark's gated clock; ``low``/``high`` the median of the
    runs' interquartile ranges around it (the round-to-round spread), ``runs`` each
    run's median (the run-to-run spread).
    """

    commit: CommitInfo
    index: int
    value: float
    low: float
    high: float
    runs: list[float]
    cpu: float | None
    wall: float | None
    peak_memory: int | None
    created: list[str]


@dataclass
class Series:
    """A benchmark's points, one per commit, oldest first."""

    id: str
    suite: str
    metric: str
    points: list[Point] = field(default_factory=list)


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _commit_order(lines: list[HistoryLine]) -> list[CommitInfo]:
    first_seen: dict[str, tuple[str, int, CommitInfo]] = {}
    for i, line in enumerate(lines):
        c = line.get("commit")
        if not c or c["dirty"]:
            continue
        known = first_seen.get(c["sha"])
        if known is None or (known[2]["date"] is None and c["date"] is not None):
            first_seen[c["sha"]] = (c["date"] or line["created"], i, c)
    return [c for _, _, c in sorted(first_seen.values(), key=lambda t: (t[0], t[1]))]


def load_series(
    lines: list[HistoryLine], limit: int | None = None
) -> tuple[list[CommitInfo], dict[str, Series], int]:
    """Group the history by benchmark and commit.

    Parameters
    ----------
    lines:
        :func:`read_history`'s lines.
    limit:
        Keep only the newest *limit* commits (None: all).

    Returns
    -------
    tuple
        The commits, oldest first; the series by benchmark id; and how many runs of
        an uncommitted tree were left out.
    """
    commits = _commit_order(lines)
    if limit is not None:
        commits = commits[-limit:]
    position = {c["sha"]: i for i, c in enumerate(commits)}
    dirty = 0
    grouped: dict[str, dict[int, list[tuple[HistoryBenchmark, str]]]] = {}
    meta: dict[str, tuple[str, str]] = {}
    for line in lines:
        c = line.get("commit")
        if c is None or c["dirty"]:
            dirty += 1
            continue
        pos = position.get(c["sha"])
        if pos is None:
            continue
        for bench in line["benchmarks"]:
            bid = bench["id"]
            grouped.setdefault(bid, {}).setdefault(pos, []).append((bench, line["created"]))
            meta[bid] = (bench["suite"], bench["metric"])
    series: dict[str, Series] = {}
    for bid in sorted(grouped):
        suite, metric = meta[bid]
        s = Series(bid, suite, metric)
        for pos in sorted(grouped[bid]):
            point = _point(commits[pos], pos, grouped[bid][pos], metric)
            if point is not None:
                s.points.append(point)
        if s.points:
            series[bid] = s
    return commits, series, dirty


def _point(
    commit: CommitInfo, index: int, runs: list[tuple[HistoryBenchmark, str]], metric: str
) -> Point | None:
    clocks = [b["cpu"] if metric == "cpu" and "cpu" in b else b["wall"] for b, _ in runs]
    valid = [c for c in clocks if c["median"] > 0]
    if not valid:
        return None
    medians = [c["median"] for c in valid]
    value = statistics.median(medians)
    half = statistics.median([c["iqr"] for c in valid]) / 2
    cpu = _median([b["cpu"]["median"] for b, _ in runs if "cpu" in b])
    wall = _median([b["wall"]["median"] for b, _ in runs if b["wall"]["median"] > 0])
    peaks = [p for b, _ in runs if (p := b.get("peak_memory")) is not None]
    return Point(
        commit=commit,
        index=index,
        value=value,
        low=max(0.0, value - half),
        high=value + half,
        runs=medians,
        cpu=cpu,
        wall=wall,
        peak_memory=int(statistics.median(peaks)) if peaks else None,
        created=[created for _, created in runs],
    )

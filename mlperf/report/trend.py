"""``mlperf history``: the steps in every benchmark's history, newest first, and a gate on them.

Reads ``reports/history/<machine-id>.jsonl`` (one point per commit, see
:mod:`mlperf.report.history`), fits a step function to each benchmark's gated
clock (:mod:`mlperf.report.steps`) and lists every step: the commits on either
side, its size with a 95 % interval, and whether it still holds at the newest
commit.  The exit status is 1 when a step that makes a benchmark slower by more
than ``--threshold`` happened within the last ``--since`` commits and still
holds, so a nightly job can gate on trends; 0 otherwise; 2 when there is no
history to read.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlperf.records import DEFAULT_AB_THRESHOLD
from mlperf.report.history import (
    CommitInfo,
    Series,
    add_source_arguments,
    load_series,
    read_history,
)
from mlperf.report.steps import Fit, Step, fit_steps
from mlperf.verdicts import change_text

__all__ = ["Analysis", "FoundStep", "add_arguments", "analyse", "gate_steps", "run"]

#: commits of history analysed unless told otherwise
HISTORY_COMMITS = 200
#: ``--since``: how many of the newest commits the gate looks at
DEFAULT_SINCE = 5


@dataclass(frozen=True)
class FoundStep:
    """A step of one benchmark, with the commits on either side of it."""

    benchmark: str
    step: Step
    before: CommitInfo
    after: CommitInfo
    position: int  # the index among all commits of the first commit with the new level

    def commit_range(self) -> str:
        """``a1b2c3d..e4f5a6b``: git's range of the commits that may have caused it."""
        return f"{self.before['sha'][:7]}..{self.after['sha'][:7]}"

    def text(self) -> str:
        """``+8.1% (+6.0% .. +10.3%) slower``."""
        s = self.step
        word = "slower" if s.ratio > 1 else "faster"
        return f"{change_text(s.ratio, s.low, s.high)} {word}"

    def as_dict(self) -> dict[str, Any]:
        s = self.step
        return {
            "benchmark": self.benchmark,
            "before": self.before["sha"],
            "after": self.after["sha"],
            "after_date": self.after["date"],
            "ratio": s.ratio,
            "low": s.low,
            "high": s.high,
            "level_before": s.level_before,
            "level_after": s.level_after,
            "in_force": s.in_force,
        }


@dataclass
class Analysis:
    """The history of one machine: commits, series, each series' fit, and every step found."""

    machine: str
    commits: list[CommitInfo]
    series: dict[str, Series]
    fits: dict[str, Fit]
    steps: list[FoundStep]  # newest first
    runs: int
    uncommitted: int
    bad_lines: int


def analyse(reports: Path | str, machine: str, limit: int | None = HISTORY_COMMITS) -> Analysis:
    """Read the machine's history, fit every benchmark and collect the steps, newest first.

    Parameters
    ----------
    reports:
        The report directory holding ``history/<machine>.jsonl``.
    machine:
        The machine id.
    limit:
        Analyse only the newest *limit* commits (None: all).

    Returns
    -------
    Analysis
        Empty lists when there is no history.
    """
    lines, bad = read_history(reports, machine)
    commits, series, uncommitted = load_series(lines, limit)
    fits: dict[str, Fit] = {}
    steps: list[FoundStep] = []
    for bid, s in series.items():
        fit = fit_steps([p.runs for p in s.points])
        fits[bid] = fit
        for step in fit.steps:
            before, after = s.points[step.index - 1], s.points[step.index]
            steps.append(FoundStep(bid, step, before.commit, after.commit, after.index))
    steps.sort(key=lambda f: (-f.position, -abs(f.step.change)))
    return Analysis(machine, commits, series, fits, steps, len(lines), uncommitted, bad)


def gate_steps(analysis: Analysis, since: int, threshold: float) -> list[FoundStep]:
    """The steps that fail the gate: slower by more than *threshold*, recent, still in force."""
    first = len(analysis.commits) - since
    return [
        f
        for f in analysis.steps
        if f.position >= first and f.step.in_force and f.step.ratio > 1 + threshold
    ]


def _table(analysis: Analysis) -> list[str]:
    if not analysis.steps:
        return ["no steps found"]
    rows = [["commits", "benchmark", "change (95% CI)", "now"]]
    for f in analysis.steps:
        rows.append(
            [f.commit_range(), f.benchmark, f.text(), "in force" if f.step.in_force else "gone"]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlperf history``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_source_arguments(parser, "history/", "this machine")
    parser.add_argument(
        "--since",
        type=int,
        default=DEFAULT_SINCE,
        metavar="N",
        help=f"gate on steps within the newest N commits (default: {DEFAULT_SINCE})",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_AB_THRESHOLD,
        help=f"smallest slowdown that fails the gate (default: {DEFAULT_AB_THRESHOLD})",
    )
    parser.add_argument(
        "--commits",
        type=int,
        default=HISTORY_COMMITS,
        metavar="N",
        help=f"analyse the newest N commits (default: {HISTORY_COMMITS})",
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the steps as JSON")


def run(args: argparse.Namespace) -> int:
    """``mlperf history``: 1 on a recent step above the threshold, 2 without history, else 0."""
    from mlperf.baselines import machine_id

    for name in ("since", "commits"):
        if getattr(args, name) < 1:
            print(
                f"mlperf history: --{name} must be at least 1; got {getattr(args, name)!r}",
                file=sys.stderr,
            )
            return 2
    from mlperf.inifile import configured_dir

    args.reports = args.reports or configured_dir("reports")
    machine = args.machine or machine_id()
    analysis = analyse(args.reports, machine, args.commits)
    if not analysis.commits:
        print(
            f"mlperf history: no committed runs in {Path(args.reports) / 'history'} for "
            f"{machine!r}; run `pytest --benchmark-enable` on a commit (or pass --machine)",
            file=sys.stderr,
        )
        return 2
    first, last = analysis.commits[0], analysis.commits[-1]
    print(
        f"mlperf history: {machine}, {len(analysis.commits)} commits "
        f"({first['sha'][:7]} .. {last['sha'][:7]}), {len(analysis.series)} benchmarks, "
        f"{analysis.runs} runs"
        + (f" ({analysis.uncommitted} uncommitted left out)" if analysis.uncommitted else "")
    )
    print("\n".join(_table(analysis)))
    failing = gate_steps(analysis, args.since, args.threshold)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "kind": "mlperf-history-steps",
                    "machine_id": machine,
                    "commits": len(analysis.commits),
                    "steps": [f.as_dict() for f in analysis.steps],
                    "failing": [f.as_dict() for f in failing],
                },
                indent=1,
            )
            + "\n",
            encoding="utf-8",
        )
    if failing:
        print(
            f"mlperf history: {len(failing)} step(s) slower by more than {args.threshold:.0%} "
            f"in the newest {args.since} commits, still in force:"
        )
        for f in failing:
            print(f"  {f.benchmark}: {f.text()} at {f.commit_range()}")
        return 1
    print(
        f"mlperf history: no step slower by more than {args.threshold:.0%} "
        f"in the newest {args.since} commits"
    )
    return 0

"""A seeded synthetic history with planted steps, to check the step detector and time the report.

The noise is the kind measured on the 2-core VMs mlperf runs on (2026-12-05, Intel
Xeon, 2 logical cores; back-to-back processes of the nine ``row_norms`` 10k
benchmarks, each a separate ``pytest --benchmark-enable`` run).  With nothing else
running (8 processes): a run's CPU-time median differs from process to process by
1-3.7 % (standard deviation of the log-median per benchmark, median 1.7 %), 1 %
of it shared by every benchmark of the run, and 3 of 72 benchmark-runs were 7-8 %
off; in 15 earlier processes, one was 1.7x slower (a slow spell).  While another
CPU-bound job shared the machine the shared part grew to 6 %; a nightly job runs
alone.  :class:`Noise` holds those numbers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from mlperf.report.history import (
    HISTORY_KIND,
    HISTORY_SCHEMA_VERSION,
    ClockPoint,
    CommitInfo,
    HistoryBenchmark,
    HistoryLine,
)

__all__ = ["PLANTED", "Noise", "PlantedStep", "synthetic_history", "write_history"]

MACHINE = "synthetic-2c-linux-py311"


@dataclass(frozen=True)
class PlantedStep:
    """Benchmark number *benchmark* becomes *ratio* times as slow from commit *commit* on."""

    benchmark: int
    commit: int
    ratio: float


@dataclass(frozen=True)
class Noise:
    """Run-to-run noise of a benchmark's median, as log-normal scales and a slow-spell rate.

    ``shared``: the part every benchmark of a run shares; ``own``: each benchmark's
    own part, drawn per benchmark between the two numbers; ``spell_rate``: the chance
    that one benchmark's run lands in a slow spell, which makes it ``spell`` times as slow.
    """

    shared: float = 0.01
    own: tuple[float, float] = (0.01, 0.03)
    spell_rate: float = 0.03
    spell: tuple[float, float] = (1.06, 1.8)


#: the issue's three steps: +3 %, +8 %, -10 %, on three of the benchmarks
PLANTED = (PlantedStep(3, 18, 1.03), PlantedStep(17, 27, 1.08), PlantedStep(29, 41, 0.90))


def _sha(seed: int, i: int) -> str:
    return hashlib.sha1(f"synthetic {seed} {i}".encode()).hexdigest()


def synthetic_history(
    n_commits: int = 60,
    n_benchmarks: int = 40,
    *,
    planted: tuple[PlantedStep, ...] = PLANTED,
    noise: Noise | None = None,
    runs_per_commit: int = 2,
    seed: int = 0,
) -> list[HistoryLine]:
    """History lines of *n_commits* commits, each measured *runs_per_commit* times.

    Parameters
    ----------
    n_commits, n_benchmarks:
        The size of the history.
    planted:
        The steps to plant (benchmark number, first commit with it, ratio).
    noise:
        The run-to-run noise (default: :class:`Noise`'s measured values).
    runs_per_commit:
        Runs per commit (a nightly job and the merge's own run: 2).
    seed:
        Seed of every random draw.

    Returns
    -------
    list of HistoryLine
        One line per run, oldest first, as :func:`mlperf.report.history.read_history` returns.
    """
    noise = noise or Noise()
    rng = np.random.default_rng(seed)
    base = np.exp(rng.uniform(np.log(2e-4), np.log(2.0), n_benchmarks))
    own = rng.uniform(*noise.own, n_benchmarks)
    iqr = rng.uniform(0.01, 0.08, n_benchmarks)
    peak = rng.integers(1, 400, n_benchmarks) * 2**20
    level = np.ones((n_commits, n_benchmarks))
    for step in planted:
        level[step.commit :, step.benchmark] *= step.ratio
    start = datetime(2026, 9, 1, 2, 0, tzinfo=UTC)
    lines: list[HistoryLine] = []
    for c in range(n_commits):
        date = start + timedelta(days=c)
        commit: CommitInfo = {
            "sha": _sha(seed, c),
            "dirty": False,
            "parent": _sha(seed, c - 1) if c else None,
            "date": date.isoformat(timespec="seconds"),
            "subject": f"synthetic commit {c}",
        }
        for r in range(runs_per_commit):
            factor = level[c] * np.exp(
                noise.shared * rng.standard_normal() + own * rng.standard_normal(n_benchmarks)
            )
            spells = rng.random(n_benchmarks) < noise.spell_rate
            factor[spells] *= rng.uniform(*noise.spell, int(spells.sum()))
            created = (date + timedelta(hours=1 + r)).isoformat(timespec="seconds")
            benchmarks: list[HistoryBenchmark] = []
            for b in range(n_benchmarks):
                median = float(base[b] * factor[b])
                clock: ClockPoint = {
                    "median": median,
                    "iqr": median * float(iqr[b]),
                    "min": median * 0.97,
                    "n": 50,
                }
                benchmarks.append(
                    {
                        "id": _bid(b),
                        "suite": _suite(b),
                        "metric": "cpu",
                        "cpu": clock,
                        "wall": {**clock, "median": median * 1.02},
                        "peak_memory": int(peak[b]),
                        "verdict": "same",
                    }
                )
            lines.append(
                {
                    "kind": HISTORY_KIND,
                    "schema_version": HISTORY_SCHEMA_VERSION,
                    "machine_id": MACHINE,
                    "created": created,
                    "commit": commit,
                    "environment": {"python": "3.11.7", "packages": {}},
                    "benchmarks": benchmarks,
                }
            )
    return lines


_SUITES = ("compute", "memory", "io", "distributed")


def _suite(b: int) -> str:
    return _SUITES[b % len(_SUITES)]


def _bid(b: int) -> str:
    return f"suites/{_suite(b)}/test_{_suite(b)}_bench.py::test_case[{b:02d}]"


def benchmark_id(b: int) -> str:
    """The id :func:`synthetic_history` gives benchmark number *b*."""
    return _bid(b)


def write_history(reports: Path | str, lines: list[HistoryLine]) -> Path:
    """Write *lines* as ``<reports>/history/<machine>.jsonl`` (replacing it); return its path."""
    path = Path(reports) / "history" / f"{lines[0]['machine_id']}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines), encoding="utf-8"
    )
    return path


def evaluate(
    seeds: range = range(20), runs_per_commit: int = 2, noise: Noise | None = None
) -> dict[str, Any]:
    """Run the detector on :func:`synthetic_history` for each seed; count what it found.

    Returns
    -------
    dict
        Per planted step, in how many histories it was found within one commit; how many
        steps were found elsewhere, and on how many of the unplanted benchmarks' histories.
    """
    from mlperf.report.history import load_series
    from mlperf.report.steps import fit_steps

    planted = {benchmark_id(p.benchmark): p for p in PLANTED}
    found = {f"{p.ratio - 1:+.0%}": 0 for p in PLANTED}
    false_steps = false_benchmarks = unplanted = 0
    for seed in seeds:
        lines = synthetic_history(seed=seed, runs_per_commit=runs_per_commit, noise=noise)
        _, series, _ = load_series(lines)
        for bid, s in series.items():
            steps = fit_steps([p.runs for p in s.points]).steps
            step = planted.get(bid)
            right = [x for x in steps if step and abs(x.index - step.commit) <= 1]
            if step is not None:
                found[f"{step.ratio - 1:+.0%}"] += bool(right)
            else:
                unplanted += 1
                false_benchmarks += bool(steps)
            false_steps += len(steps) - len(right)
    return {
        "histories": len(seeds),
        "runs_per_commit": runs_per_commit,
        "found_within_one_commit": found,
        "false_steps": false_steps,
        "unplanted_benchmarks_with_a_step": f"{false_benchmarks}/{unplanted}",
    }


if __name__ == "__main__":  # `make history-eval`
    import time

    for runs in (1, 2):
        t0 = time.perf_counter()
        print(json.dumps(evaluate(runs_per_commit=runs)), f"{time.perf_counter() - t0:.1f} s")

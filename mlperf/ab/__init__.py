"""Same-run A/B of two revisions: ``mlperf ab BASE [HEAD] [PATH ...]``, the merge gate.

Stored baselines cannot gate a 5 % change on a shared machine whose medians drift
2x between processes, so the gate measures both revisions in the same job: git
worktrees (one environment when the dependencies match), each side importing its
own revision's code (its source directories, or its own build when the project
compiles code; every worker checks where the project's modules came from and stops
the run when one came from elsewhere), the same benchmark ids,
single rounds interleaved A/B/B/A between the two workers of a process pair (same
CPU, same hash seed, same memory layout), several fresh pairs (one per CPU at a
time, side by side), process CPU time (wall time for
``@pytest.mark.mlperf(metric="wall")``), peak memory.  The median ratio is taken
over time-adjacent round pairs.  A benchmark is a
REGRESSION only when a one-sided Mann-Whitney test gives p < 0.01 *and* the
bootstrap 95 % interval of the median ratio lies wholly above ``1 + threshold``,
and only if a re-measurement with twice the rounds in fresh processes says so
again (or, when the re-measurement alone is too noisy to tell, both measurements
together do).  ``suites/gate`` measures how often this verdict is wrong.
"""

from __future__ import annotations

from mlperf.ab.compare import judge, run_ab
from mlperf.ab.result import AbResult, BenchmarkVerdict
from mlperf.ab.types import AbError, Measurement, Plan, Settings, Side
from mlperf.ab.verdict import Decision, decide, paired_block_bootstrap

__all__ = [
    "AbError",
    "AbResult",
    "BenchmarkVerdict",
    "Decision",
    "Measurement",
    "Plan",
    "Settings",
    "Side",
    "decide",
    "judge",
    "paired_block_bootstrap",
    "run_ab",
]

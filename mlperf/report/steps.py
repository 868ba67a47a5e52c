"""Change points in a benchmark's history: a penalised step fit over commits (pure numpy).

The model is asv's (``asv/step_detect.py``): between changes a benchmark's time is
constant, and each commit's point is that constant plus noise.  Fitting it means
choosing the segmentation that minimises the weighted squared error plus a
penalty per step (the "Potts" functional), which optimal partitioning solves
exactly in O(n^2) (PELT prunes the same recursion; 60-500 commits need no
pruning).  Three choices make it fit the shared 2-core machines mlperf runs on:

* It works on log-times, so a step is a ratio and one penalty serves a 1 ms and a
  10 s benchmark alike.  A commit measured by *k* runs weighs *k*.
* The noise scale is the benchmark's own, estimated robustly from the differences
  of neighbouring commits (a step spoils one difference, not the estimate), and
  never below :data:`NOISE_FLOOR`.
* Slow spells of the machine make a single run up to 1.8x slower (see the
  README's "Baselines and the gate").  Before the fit each point is clipped to
  :data:`CLIP` noise scales around the running median of its neighbours, and a
  segment needs at least two runs, so one slow run is never a step while a real
  step, which every later commit shares, passes untouched.

A step is reported with the commits on either side, its size as a ratio with a
95 % interval (the two segments' means and their standard errors), and whether
it is still in force at the newest commit.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALPHA",
    "CLIP",
    "MIN_COMMITS",
    "NOISE_FLOOR",
    "PENALTY",
    "Fit",
    "Step",
    "fit_steps",
    "noise_scale",
]

#: the penalty per step, in multiples of ``log(n)`` noise variances (the Schwarz criterion's
#: 2 for a location and a level, raised to 3 so that 37 benchmarks x 60 commits of the
#: synthetic history of ``tests/test_history.py`` invent no step)
PENALTY = 3.0
#: the smallest noise scale assumed (0.5 % of the time): steps smaller than that are not news
NOISE_FLOOR = 0.005
#: points further than this many noise scales from their neighbours' median are clipped
CLIP = 3.0
#: a segment needs this many commits: the runs of one commit share the machine's state of the
#: moment (back-to-back processes were 10 % faster together on 2026-12-05), so one commit
#: alone, however often measured, cannot tell a step from a slow spell
MIN_COMMITS = 2
#: a proposed step stands only if the commits on its two sides differ at this level by a
#: two-sided Mann-Whitney test (which a slow run cannot sway more than any other point)
ALPHA = 0.001
#: the points on each side of a step that its test compares
TEST_WINDOW = 50
#: steps smaller than this (1.5 %, half ``mlperf ab``'s threshold) are not reported: on a
#: shared 2-core machine a run's median moves by 1-4 % from one process to the next
MIN_CHANGE = 0.015
_Z95 = 1.959963984540054


@dataclass(frozen=True)
class Step:
    """A change between point ``index - 1`` and point ``index`` of a series.

    ``ratio`` is the level after over the level before (1.08: 8 % slower), with its
    95 % interval ``low`` .. ``high``; ``level_before`` and ``level_after`` are the
    fitted levels (in the series' own unit); ``in_force`` says whether the newest
    level still differs from ``level_before`` by at least half the step, the same way.
    """

    index: int
    ratio: float
    low: float
    high: float
    level_before: float
    level_after: float
    in_force: bool

    @property
    def change(self) -> float:
        """The relative change, ``ratio - 1``."""
        return self.ratio - 1.0


@dataclass(frozen=True)
class Fit:
    """The fitted step function of a series: its steps, levels per point and noise scale."""

    steps: list[Step]
    levels: list[float]
    noise: float


def noise_scale(logs: np.ndarray, runs: np.ndarray, floor: float = NOISE_FLOOR) -> float:
    """Robust noise scale of one run's log-time: the MAD of neighbours' normalised differences.

    Parameters
    ----------
    logs:
        Log of each commit's point (the median of its runs).
    runs:
        Runs behind each point (its variance is the run's over *runs*).
    floor:
        The smallest scale returned.

    Returns
    -------
    float
        The standard deviation of a single run's log-time, at least *floor*.
    """
    if len(logs) < 3:
        return floor
    diffs = np.diff(logs) / np.sqrt(1.0 / runs[:-1] + 1.0 / runs[1:])
    rough = 1.4826 * float(np.median(np.abs(diffs)))  # robust but noisy: +-25 % at 60 commits
    # the root mean square of the differences, a step's or a slow run's cut down to 2.5 rough
    # scales, varies half as much; 2.5 scales keep 98.8 % of a normal's variance
    kept = np.minimum(np.abs(diffs), 2.5 * rough)
    return max(floor, float(np.sqrt(np.mean(kept**2) / 0.9876)))


def _clipped(logs: np.ndarray, runs: np.ndarray, noise: float, clip: float) -> np.ndarray:
    """Pull in points that stand out from both sides: a slow run, never a step's first point."""
    out = logs.copy()
    n = len(out)
    for _ in range(2):  # the second pass sees neighbours that the first one already pulled in
        prev = out.copy()
        for i in range(n):
            sides = [
                float(np.median(w))
                for w in (prev[max(0, i - 4) : i], prev[i + 1 : i + 5])
                if len(w)
            ]
            if not sides:
                continue
            limit = clip * noise / math.sqrt(runs[i])
            out[i] = min(max(logs[i], min(sides) - limit), max(sides) + limit)
    return out


def _partition(y: np.ndarray, w: np.ndarray, penalty: float, min_length: int) -> list[int]:
    """Optimal partitioning: the first index of every segment after the first."""
    n = len(y)
    s0 = np.concatenate([[0.0], np.cumsum(w)])
    s1 = np.concatenate([[0.0], np.cumsum(w * y)])
    s2 = np.concatenate([[0.0], np.cumsum(w * y * y)])
    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    last = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        i = np.arange(j)
        weight = s0[j] - s0[i]
        cost = (s2[j] - s2[i]) - (s1[j] - s1[i]) ** 2 / np.where(weight > 0, weight, 1.0)
        total = best[i] + cost + penalty
        total[j - i < min_length] = np.inf
        k = int(np.argmin(total))
        best[j], last[j] = total[k], k
    cuts, j = [], n
    while j > 0 and np.isfinite(best[j]):
        j = int(last[j])
        if j > 0:
            cuts.append(j)
    return sorted(cuts)


def _confirmed(logs: np.ndarray, cuts: list[int], alpha: float, min_change: float) -> list[int]:
    """The proposed steps that a rank test confirms and that are big enough to matter.

    The least significant failing step is dropped first, then the rest are tested again
    (dropping one merges two segments).
    """
    from mlperf.stats import mann_whitney

    cuts = list(cuts)
    smallest = math.log1p(min_change)
    while cuts:
        bounds = [0, *cuts, len(logs)]
        failing = []
        for s in range(len(cuts)):
            before = logs[bounds[s] : bounds[s + 1]]
            after = logs[bounds[s + 1] : bounds[s + 2]]
            p = mann_whitney(before[-TEST_WINDOW:], after[:TEST_WINDOW], "two-sided").p
            if p >= alpha or abs(float(np.median(after) - np.median(before))) < smallest:
                failing.append((p, s))
        if not failing:
            break
        del cuts[max(failing)[1]]
    return cuts


def _without_slow_runs(runs: list[np.ndarray], noise: float, clip: float) -> list[np.ndarray]:
    """Each commit's runs less those slower than its fastest by more than noise allows.

    A slow spell only ever slows a run down, so of two runs of one commit that
    disagree beyond *clip* noise scales the slower one is the spell's.
    """
    limit = clip * noise * math.sqrt(2)
    return [r[r <= r.min() + limit] for r in runs]


def fit_steps(
    runs: Sequence[Sequence[float]],
    *,
    penalty: float = PENALTY,
    noise_floor: float = NOISE_FLOOR,
    clip: float = CLIP,
    min_commits: int = MIN_COMMITS,
    alpha: float = ALPHA,
    min_change: float = MIN_CHANGE,
) -> Fit:
    """Fit a step function to a benchmark's history, oldest commit first.

    Parameters
    ----------
    runs:
        Per commit, the time of each of its runs (any positive unit; a run's median).
    penalty:
        Cost of a step in multiples of ``log(n)`` noise variances; higher finds fewer.
    noise_floor:
        The smallest relative noise scale assumed.
    clip:
        Runs and points beyond this many noise scales from their neighbours are pulled in.
    min_commits:
        Commits a segment needs.
    alpha:
        Level of the rank test that must confirm each step.
    min_change:
        The smallest relative change reported (the medians of the two sides differ by this much).

    Returns
    -------
    Fit
        The steps (oldest first), the fitted level of every commit, and the noise scale of
        one run's log-time.

    Raises
    ------
    ValueError
        When a commit has no runs, or a time is not a positive finite number.
    """
    times = [np.asarray(r, dtype=np.float64) for r in runs]
    for i, r in enumerate(times):
        if r.size == 0 or not (np.all(np.isfinite(r)) and np.all(r > 0)):
            raise ValueError(
                f"fit_steps: every commit needs runs with positive finite times; commit {i} "
                f"has {list(runs[i])!r}"
            )
    if not times:
        return Fit([], [], noise_floor)
    logs_of = [np.log(r) for r in times]
    k = np.array([r.size for r in logs_of], dtype=np.float64)
    rough = noise_scale(np.array([np.median(r) for r in logs_of]), k, noise_floor)
    kept = _without_slow_runs(logs_of, rough, clip)
    k = np.array([r.size for r in kept], dtype=np.float64)
    logs = np.array([np.median(r) for r in kept])
    noise = noise_scale(logs, k, noise_floor)
    z = _clipped(logs, k, noise, clip) / noise
    cuts = _partition(z, k, penalty * math.log(max(len(logs), 2)), min_commits)
    cuts = _confirmed(logs, cuts, alpha, min_change)
    bounds = [0, *cuts, len(logs)]
    means = [float(np.average(z[a:b], weights=k[a:b])) * noise for a, b in _pairs(bounds)]
    weights = [float(k[a:b].sum()) for a, b in _pairs(bounds)]
    levels = [
        math.exp(m) for m, (a, b) in zip(means, _pairs(bounds), strict=True) for _ in range(b - a)
    ]
    newest = means[-1]
    steps = []
    for s, cut in enumerate(cuts):
        d = means[s + 1] - means[s]
        half = _Z95 * noise * math.sqrt(1 / weights[s] + 1 / weights[s + 1])
        still = newest - means[s]
        steps.append(
            Step(
                index=cut,
                ratio=math.exp(d),
                low=math.exp(d - half),
                high=math.exp(d + half),
                level_before=math.exp(means[s]),
                level_after=math.exp(means[s + 1]),
                in_force=still * d > 0 and abs(still) >= abs(d) / 2,
            )
        )
    return Fit(steps, levels, noise)


def _pairs(bounds: list[int]) -> list[tuple[int, int]]:
    return list(itertools.pairwise(bounds))

"""The statistics behind a verdict: pure functions of samples, no I/O.

Benchmarks on shared machines are noisy and skewed (per-call CV of 12-113 % on
this project's 2-core CI VMs, 2026-11-26), so mlperf never gates on a bare ratio of
means: a slowdown counts only when a rank test says the samples really differ *and*
the whole confidence interval of the median ratio is beyond the tolerance (the rule
of :mod:`mlperf.verdicts`).  Everything here is dependency-free (numpy
only) and checked against reference values in ``tests/test_stats.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, cast

import numpy as np

from mlperf.verdicts import ALPHA, classify, row_text

__all__ = [
    "Comparison",
    "MannWhitney",
    "Summary",
    "bootstrap_ratio_ci",
    "compare_samples",
    "mann_whitney",
    "memory_verdict",
    "summarize",
]

Alternative = Literal["greater", "less", "two-sided"]
TimeVerdict = Literal["REGRESSION", "IMPROVEMENT", "same", "inconclusive"]
MemoryVerdict = Literal["lower", "same", "REGRESSION"]

#: exact null distribution below this many pairs (m * n) when there are no ties
EXACT_MAX_PAIRS = 2500


@dataclass(frozen=True)
class Summary:
    """Order statistics of one benchmark's round samples (seconds or bytes)."""

    n: int
    median: float
    iqr: float
    min: float
    mean: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "median": self.median,
            "iqr": self.iqr,
            "min": self.min,
            "mean": self.mean,
        }


def summarize(samples: Sequence[float]) -> Summary:
    """Return n, median, inter-quartile range, min and mean of *samples*.

    Raises
    ------
    ValueError
        If *samples* is empty or holds a non-finite value.
    """
    a = _as_samples(samples, "summarize")
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Summary(
        n=int(a.size),
        median=float(med),
        iqr=float(q3 - q1),
        min=float(a.min()),
        mean=float(a.mean()),
    )


def _as_samples(samples: Sequence[float] | np.ndarray, who: str) -> np.ndarray:
    a = np.asarray(samples, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{who}: needs at least one sample, got an empty sequence")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{who}: samples must be finite; got {a[~np.isfinite(a)][:3].tolist()!r}")
    return a


@dataclass(frozen=True)
class MannWhitney:
    """Result of :func:`mann_whitney`: the U statistic of *x* and the p-value."""

    u: float
    p: float
    exact: bool


@lru_cache(maxsize=64)
def _u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0..m*n under H0, no ties (the classic counting recursion)."""
    # f[j][u]: number of arrangements of i x's and j y's with statistic u, built over i.
    f = [np.zeros(1, dtype=np.float64) + 1.0 for _ in range(n + 1)]
    for _i in range(1, m + 1):
        g = [np.ones(1, dtype=np.float64)]  # i x's, 0 y's: U = 0 once
        for j in range(1, n + 1):
            # last element is an x (adds j to U) or a y (adds 0)
            a, b = f[j], g[j - 1]
            size = max(a.size + j, b.size)
            h = np.zeros(size)
            h[j : j + a.size] += a
            h[: b.size] += b
            g.append(h)
        f = g
    counts = f[n]
    cdf: np.ndarray = np.cumsum(counts) / counts.sum()
    return cdf


def mann_whitney(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    alternative: Alternative = "greater",
) -> MannWhitney:
    """Mann-Whitney U test of whether *x* tends to be larger than *y*.

    Parameters
    ----------
    x, y:
        Independent samples (e.g. round times of the new and the stored run).
    alternative:
        ``"greater"`` (x stochastically larger: a slowdown when x is the new run),
        ``"less"`` or ``"two-sided"``.

    Returns
    -------
    MannWhitney
        ``u`` counts the pairs with x > y (ties count one half); ``p`` is exact for
        small tie-free samples (m*n <= 2500) and otherwise from the normal
        approximation with tie and continuity corrections (as scipy's ``asymptotic``).
    """
    a, b = _as_samples(x, "mann_whitney"), _as_samples(y, "mann_whitney")
    m, n = a.size, b.size
    both = np.concatenate([a, b])
    ranks = _rankdata(both)
    u = float(ranks[:m].sum() - m * (m + 1) / 2)
    _, tie_counts = np.unique(both, return_counts=True)
    has_ties = bool((tie_counts > 1).any())
    if not has_ties and m * n <= EXACT_MAX_PAIRS:
        cdf = _u_null_cdf(m, n)
        k = round(u)
        p_greater = 1.0 - (cdf[k - 1] if k >= 1 else 0.0)  # P(U >= u)
        p_less = float(cdf[k])  # P(U <= u)
        exact = True
    else:
        mu = m * n / 2
        tie_term = float(((tie_counts**3) - tie_counts).sum()) / ((m + n) * (m + n - 1))
        sigma = math.sqrt(m * n / 12 * ((m + n + 1) - tie_term))
        if sigma == 0:
            return MannWhitney(u=u, p=1.0, exact=False)
        p_greater = _norm_sf((u - mu - 0.5) / sigma)
        p_less = _norm_sf((mu - u - 0.5) / sigma)
        exact = False
    if alternative == "greater":
        p = p_greater
    elif alternative == "less":
        p = p_less
    elif alternative == "two-sided":
        p = min(1.0, 2 * min(p_greater, p_less))
    else:
        raise ValueError(
            "mann_whitney: alternative must be 'greater', 'less' or 'two-sided'; got "
            f"{alternative!r}"
        )
    return MannWhitney(u=u, p=float(min(1.0, max(0.0, p))), exact=exact)


def _rankdata(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank."""
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    boundaries = np.flatnonzero(np.diff(sorted_a)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [a.size]])
    avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
    ranks_sorted = np.repeat(avg, ends - starts)
    ranks = np.empty(a.size)
    ranks[order] = ranks_sorted
    return ranks


def _norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


def bootstrap_ratio_ci(
    base: Sequence[float] | np.ndarray,
    head: Sequence[float] | np.ndarray,
    *,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``median(head) / median(base)``.

    Each resample draws both samples with replacement independently; the interval
    is deterministic for a given *seed*.

    Raises
    ------
    ValueError
        If *level* is not in (0, 1), a sample set is empty or not finite, or a base
        sample is not positive.
    """
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ratio_ci: level must be in (0, 1); got {level!r}")
    a, b = _as_samples(base, "bootstrap_ratio_ci"), _as_samples(head, "bootstrap_ratio_ci")
    if np.any(a <= 0):
        raise ValueError("bootstrap_ratio_ci: base samples must be positive to form a ratio")
    rng = np.random.default_rng(seed)
    ma = np.median(a[rng.integers(0, a.size, (n_boot, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, (n_boot, b.size))], axis=1)
    lo, hi = np.quantile(mb / ma, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Comparison:
    """How a new set of samples compares with a reference set."""

    ratio: float  # median(new) / median(ref)
    ci_low: float  # 95 % bootstrap interval of the ratio
    ci_high: float
    p_slower: float
    p_faster: float
    threshold: float
    verdict: TimeVerdict

    def describe(self) -> str:
        """``+4.1% (+2.0% .. +6.3%) REGRESSION``: the wording of every gate."""
        return row_text(self.ratio, self.ci_low, self.ci_high, self.verdict)


def compare_samples(
    reference: Sequence[float],
    new: Sequence[float],
    *,
    max_regression: float,
    alpha: float = ALPHA,
) -> Comparison:
    """Verdict of *new* round samples against *reference* ones.

    The rule is every gate's (:func:`mlperf.verdicts.classify`) with *max_regression*
    as the threshold: ``REGRESSION`` needs a one-sided Mann-Whitney p < *alpha* and
    the whole 95 % bootstrap interval of the median ratio above ``1 + max_regression``;
    ``IMPROVEMENT`` is the mirror image; ``same`` needs the whole interval inside the
    band; anything else is ``inconclusive``.

    Raises
    ------
    ValueError
        If *max_regression* is negative or not a finite number, or a sample set is empty
        or not finite.
    """
    if not (
        isinstance(max_regression, int | float)
        and math.isfinite(max_regression)
        and max_regression >= 0
    ):
        raise ValueError(
            f"compare_samples: max_regression must be a finite number >= 0; got {max_regression!r}"
        )
    ref, cur = _as_samples(reference, "compare_samples"), _as_samples(new, "compare_samples")
    ref_med = float(np.median(ref))
    p_slower = mann_whitney(cur, ref, "greater").p
    p_faster = mann_whitney(cur, ref, "less").p
    if ref_med <= 0:  # a zero reference: no ratio, and nothing to claim
        inf = math.inf
        return Comparison(inf, inf, inf, p_slower, p_faster, max_regression, "inconclusive")
    ratio = float(np.median(cur)) / ref_med
    low, high = bootstrap_ratio_ci(ref, cur)
    low, high = min(low, ratio), max(high, ratio)
    verdict = classify(ratio, low, high, p_slower, p_faster, threshold=max_regression, alpha=alpha)
    return Comparison(
        ratio, low, high, p_slower, p_faster, max_regression, cast("TimeVerdict", verdict)
    )


def memory_verdict(
    reference: float, new: float, *, max_regression: float, floor_bytes: int = 2 * 1024 * 1024
) -> MemoryVerdict:
    """Verdict of one peak-memory reading against the stored one.

    ``REGRESSION`` when *new* exceeds ``reference * (1 + max_regression)`` and does
    so by more than *floor_bytes* (allocator noise on tiny peaks is not a
    regression); ``lower`` when *new* is below ``reference / (1 + max_regression)``
    by more than *floor_bytes*; else ``same`` (a smaller increase included).

    Raises
    ------
    ValueError
        If a byte count is negative.
    """
    if reference < 0 or new < 0:
        raise ValueError(f"memory_verdict: byte counts must be >= 0; got {reference!r}, {new!r}")
    if new > reference * (1 + max_regression) and new - reference > floor_bytes:
        return "REGRESSION"
    if new < reference / (1 + max_regression) and reference - new > floor_bytes:
        return "lower"
    return "same"

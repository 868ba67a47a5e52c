"""The A/B verdict: pure functions of the interleaved samples, no I/O.

Samples arrive in *blocks*: a block is one or a few consecutive rounds of one side,
and blocks alternate A/B/B/A within a pair of worker processes, so block ``j`` of A
and block ``j`` of B ran next to each other in time.  On a shared machine the CPU
time of the same code jumps between states (on the 2-core VM a fast one and one
about 1.9x slower, switching every few milliseconds), so a ratio of
the two sides' pooled medians swings with the mix of states each side happened
to get.  The *median ratio* here is therefore the median, over block pairs, of
``median(B_j) / median(A_j)``: each block is compared only with its neighbour in
time, and a pair split by a change of state is one outlier among dozens.  Its
confidence interval comes from a bootstrap over block pairs (stratified by
process pair); the Mann-Whitney test is the plain two-sample one of
:mod:`mlperf.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

from mlperf.records import DEFAULT_AB_THRESHOLD as AB_THRESHOLD
from mlperf.verdicts import ALPHA, VERDICTS, classify, row_text

__all__ = ["VERDICTS", "Decision", "block_log_ratios", "decide", "paired_block_bootstrap"]


Blocks = Sequence[Sequence[Sequence[float]]]  # [process pair][block][round]


@dataclass(frozen=True)
class Decision:
    """What the samples of one benchmark say about head against base."""

    verdict: str
    ratio: float  # median over block pairs of median(head block) / median(base block)
    ci_low: float
    ci_high: float
    p_slower: float  # one-sided Mann-Whitney, head > base
    p_faster: float
    n_base: int
    n_head: int
    threshold: float
    base_median: float
    head_median: float

    @property
    def noise(self) -> float:
        """Relative half-width of the confidence interval: the smallest change this run resolves."""
        return (self.ci_high - self.ci_low) / 2 / self.ratio if self.ratio > 0 else math.inf

    def rounds_to_resolve(self) -> int:
        """Rounds per side that would shrink the interval to half the threshold (noise ~ n^-1/2)."""
        scale = (self.noise / (self.threshold / 2)) ** 2 if self.threshold > 0 else math.inf
        return int(min(1e9, math.ceil(self.n_base * max(1.0, scale))))

    def text(self) -> str:
        """``+8.0% (+5.0% .. +11.0%) REGRESSION``, and for an inconclusive one how noisy it was."""
        text = row_text(self.ratio, self.ci_low, self.ci_high, self.verdict)
        if self.verdict == "inconclusive":
            text += f", noise ±{self.noise:.1%} vs threshold {self.threshold:.0%}"
            if self.threshold > 0:
                text += f" (about --rounds {self.rounds_to_resolve()} would resolve it)"
        return text

    def as_dict(self) -> dict[str, float | int | str]:
        return {**asdict(self), "noise": self.noise, "text": self.text()}


def _blocks(blocks: Blocks, who: str) -> list[np.ndarray]:
    out = []
    for i, pair in enumerate(blocks):
        arr = np.asarray([list(b) for b in pair], dtype=np.float64)
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(
                f"{who}: process pair {i} needs equal-length, non-empty blocks; "
                f"got shape {arr.shape!r}"
            )
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"{who}: samples must be finite and >= 0; process pair {i} has {arr.min()!r}"
            )
        out.append(arr)
    if not out:
        raise ValueError(f"{who}: needs at least one process pair of samples, got none")
    return out


def block_log_ratios(base: Blocks, head: Blocks) -> list[np.ndarray]:
    """Per process pair, ``log(median(B_j) / median(A_j))`` for every block pair *j*."""
    a, b = _blocks(base, "block_log_ratios"), _blocks(head, "block_log_ratios")
    if [x.shape[0] for x in a] != [x.shape[0] for x in b]:
        raise ValueError(
            "block_log_ratios: base and head need the same number of blocks per process pair; "
            f"got {[x.shape[0] for x in a]!r} and {[x.shape[0] for x in b]!r}"
        )
    out = []
    for xa, xb in zip(a, b, strict=True):
        ma, mb = np.median(xa, axis=1), np.median(xb, axis=1)
        if np.any(ma <= 0) or np.any(mb <= 0):
            raise ValueError("block_log_ratios: block medians must be positive to form a ratio")
        out.append(np.log(mb / ma))
    return out


def paired_block_bootstrap(
    base: Blocks, head: Blocks, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The median ratio of head to base over paired blocks, with a percentile bootstrap interval.

    Parameters
    ----------
    base, head:
        ``[process pair][block][round]`` samples; pair *p* of both sides must have
        the same number of blocks (block *j* of base ran next to block *j* of head).
    level:
        Confidence level, in (0, 1).
    n_boot, seed:
        Number of resamples and the generator seed (the interval is deterministic).

    Returns
    -------
    tuple of float
        The estimate, the lower and the upper bound of the interval.

    Notes
    -----
    Block pairs are resampled within each process pair, so every resample keeps
    the design.  A fresh process has its own memory layout, which can move the
    CPU time of the same code by a few per cent, so when the process pairs
    disagree by more than their own noise explains, both ends of the interval are
    widened by that excess (DerSimonian-Laird random-effects variance over the
    pairs); when they agree, the interval is the plain bootstrap one.
    """
    if not 0 < level < 1:
        raise ValueError(f"paired_block_bootstrap: level must be in (0, 1); got {level!r}")
    ratios = block_log_ratios(base, head)
    rng = np.random.default_rng(seed)
    inner = [r[rng.integers(0, r.size, (n_boot, r.size))] for r in ratios]  # [pair](boot, blocks)
    boot = np.median(np.concatenate(inner, axis=1), axis=1)
    centre = float(np.median(np.concatenate(ratios)))
    lo, hi = np.quantile(boot, [(1 - level) / 2, 1 - (1 - level) / 2])
    tau2 = _between_pair_variance(ratios, inner)
    if tau2 > 0:  # widen both ends by the pairs' excess disagreement (random-effects model)
        z = NormalDist().inv_cdf(1 - (1 - level) / 2)
        extra = z * z * tau2 / len(ratios)
        lo = centre - math.sqrt((centre - lo) ** 2 + extra)
        hi = centre + math.sqrt((hi - centre) ** 2 + extra)
    return math.exp(centre), math.exp(lo), math.exp(hi)


def _between_pair_variance(ratios: list[np.ndarray], inner: list[np.ndarray]) -> float:
    """DerSimonian-Laird estimate of the variance between process pairs beyond their own noise.

    Each pair's estimate is the median of its block log-ratios, with the variance
    of that median over the bootstrap draws; Cochran's Q compares the spread of
    the estimates with those variances.  0 when the pairs agree within their noise.
    """
    if len(ratios) < 2:
        return 0.0
    est = np.array([np.median(r) for r in ratios])
    var = np.array([np.var(np.median(x, axis=1)) for x in inner])
    var = np.maximum(var, 1e-12)  # a perfectly quiet pair must not get infinite weight
    w = 1 / var
    mean = float((w * est).sum() / w.sum())
    q = float((w * (est - mean) ** 2).sum())
    denom = float(w.sum() - (w * w).sum() / w.sum())
    return max(0.0, (q - (len(ratios) - 1)) / denom) if denom > 0 else 0.0


def decide(
    base: Blocks,
    head: Blocks,
    *,
    threshold: float = AB_THRESHOLD,
    alpha: float = ALPHA,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Decision:
    """Verdict of head against base from interleaved block samples.

    The rule is every gate's (:func:`mlperf.verdicts.classify`): ``REGRESSION``
    needs both a one-sided Mann-Whitney p < *alpha* and the whole confidence
    interval of the median ratio above ``1 + threshold``; ``IMPROVEMENT`` is the
    mirror image; ``same`` means the interval lies inside the band; anything else
    is ``inconclusive``: the run was too noisy to tell, and :attr:`Decision.noise`
    says by how much.
    """
    from mlperf.stats import mann_whitney

    if not threshold >= 0:
        raise ValueError(f"decide: threshold must be >= 0 (e.g. 0.03 for 3 %); got {threshold!r}")
    a = np.concatenate([x.ravel() for x in _blocks(base, "decide")])
    b = np.concatenate([x.ravel() for x in _blocks(head, "decide")])
    ratio, lo, hi = paired_block_bootstrap(base, head, level=level, n_boot=n_boot, seed=seed)
    p_slower = mann_whitney(b, a, "greater").p
    p_faster = mann_whitney(b, a, "less").p
    verdict = classify(ratio, lo, hi, p_slower, p_faster, threshold=threshold, alpha=alpha)
    med_a, med_b = float(np.median(a)), float(np.median(b))
    return Decision(
        verdict=verdict,
        ratio=ratio,
        ci_low=lo,
        ci_high=hi,
        p_slower=p_slower,
        p_faster=p_faster,
        n_base=int(a.size),
        n_head=int(b.size),
        threshold=threshold,
        base_median=med_a,
        head_median=med_b,
    )

"""The one verdict language of every gate: stored baselines, ``baseline diff`` and ``mlperf ab``.

Each comparison ends in a ratio of head (or the new run) to base (or the baseline),
a confidence interval of that ratio, one-sided Mann-Whitney p-values, and a
*threshold*: the smallest relative change that matters (``mlperf ab`` 3 %, the
stored-baseline gate 25 % by default, since medians recorded in another process
and on another day drift far more than two processes measured side by side).
The rule is the same everywhere, and a verdict never claims more than the data:

========================  =====================================================
``REGRESSION``            p(slower) < alpha **and** the whole interval above ``1 + threshold``
``IMPROVEMENT``           p(faster) < alpha **and** the whole interval below ``1 / (1 + threshold)``
``same``                  the whole interval inside ``[1 / (1 + threshold), 1 + threshold]``
``inconclusive``          anything else: too noisy to tell at this threshold
========================  =====================================================

So a significant but tiny difference is ``same`` (the threshold is the minimum
effect size), and a large but uncertain one is ``inconclusive``, never ``same``.
Rows read ``+4.1% (+2.0% .. +6.3%) REGRESSION``: the change and its interval, then
the verdict; p-values are kept in the JSON, not next to a verdict they did not decide.
"""

from __future__ import annotations

import math

__all__ = [
    "ALPHA",
    "VERDICTS",
    "change_text",
    "classify",
    "classify_count",
    "count_text",
    "pct",
    "row_text",
]

#: every verdict :func:`classify` returns
VERDICTS = ("REGRESSION", "IMPROVEMENT", "same", "inconclusive")
#: significance level of the rank test
ALPHA = 0.01


def classify(
    ratio: float,
    low: float,
    high: float,
    p_slower: float,
    p_faster: float,
    *,
    threshold: float,
    alpha: float = ALPHA,
) -> str:
    """The verdict of a ratio with its interval and p-values (see the module's table).

    Raises
    ------
    ValueError
        When *threshold* is negative or not a number, or the interval does not hold *ratio*.
    """
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(
            f"classify: threshold must be a finite number >= 0 (0.03 means 3 %); got {threshold!r}"
        )
    if not low <= ratio <= high:
        raise ValueError(
            f"classify: the interval [{low!r}, {high!r}] must hold the ratio {ratio!r}"
        )
    up, down = 1 + threshold, 1 / (1 + threshold)
    if p_slower < alpha and low > up:
        return "REGRESSION"
    if p_faster < alpha and high < down:
        return "IMPROVEMENT"
    if low >= down and high <= up:
        return "same"
    return "inconclusive"


def pct(ratio: float) -> str:
    """A ratio as a signed percent change: ``1.041`` -> ``+4.1%``."""
    return f"{(ratio - 1) * 100:+.1f}%"


def change_text(ratio: float, low: float, high: float) -> str:
    """``+4.1% (+2.0% .. +6.3%)``: the change and its confidence interval."""
    return f"{pct(ratio)} ({pct(low)} .. {pct(high)})"


def row_text(ratio: float, low: float, high: float, verdict: str) -> str:
    """``+4.1% (+2.0% .. +6.3%) REGRESSION``: how every gate writes one comparison."""
    return f"{change_text(ratio, low, high)} {verdict}"


def classify_count(base: int, head: int, *, threshold: float) -> str:
    """The verdict of two instruction counts: no interval, a count repeats exactly.

    ``REGRESSION`` when *head* exceeds *base* by more than *threshold* (0.01 = 1 %),
    ``IMPROVEMENT`` when it is below ``base / (1 + threshold)``, else ``same``.
    """
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(
            f"classify_count: threshold must be a finite number >= 0 (0.01 means 1 %); "
            f"got {threshold!r}"
        )
    if base <= 0:
        return "inconclusive"
    ratio = head / base
    if ratio > 1 + threshold:
        return "REGRESSION"
    if ratio < 1 / (1 + threshold):
        return "IMPROVEMENT"
    return "same"


def count_text(base: int, head: int) -> str:
    """``+1.5% (+12,345 instructions)``: how every gate writes a change of count."""
    ratio = head / base if base > 0 else math.inf
    return f"{pct(ratio)} ({head - base:+,} instructions)"

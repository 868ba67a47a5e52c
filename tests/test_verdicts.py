"""The verdict language every gate shares (:mod:`mlperf.verdicts`)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlperf.verdicts import classify, row_text


@pytest.mark.parametrize(
    ("ratio", "low", "high", "p_slower", "p_faster", "verdict"),
    [
        (1.10, 1.06, 1.14, 1e-6, 1.0, "REGRESSION"),
        (1.10, 1.02, 1.18, 1e-6, 1.0, "inconclusive"),  # significant, but it may be under 3 %
        (1.01, 1.005, 1.015, 1e-9, 1.0, "same"),  # significant and tiny: the threshold decides
        (0.90, 0.87, 0.93, 1.0, 1e-6, "IMPROVEMENT"),
        (1.00, 0.90, 1.10, 0.5, 0.5, "inconclusive"),  # too noisy to say "same"
        (1.05, 1.04, 1.06, 0.2, 0.8, "inconclusive"),  # the rank test disagrees
    ],
)
def test_the_rule(
    ratio: float, low: float, high: float, p_slower: float, p_faster: float, verdict: str
) -> None:
    assert classify(ratio, low, high, p_slower, p_faster, threshold=0.03) == verdict


def test_rows_never_put_a_p_value_beside_a_verdict() -> None:
    assert row_text(1.041, 1.02, 1.063, "REGRESSION") == "+4.1% (+2.0% .. +6.3%) REGRESSION"


@pytest.mark.parametrize("bad", [float("nan"), -0.1, float("inf"), "0.03"])
def test_a_threshold_that_would_turn_the_gate_off_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        classify(1.0, 0.9, 1.1, 0.5, 0.5, threshold=bad)  # type: ignore[arg-type]


@given(
    ratio=st.floats(0.1, 10),
    half=st.floats(0, 1),
    p=st.floats(0, 1),
    threshold=st.floats(0, 1),
)
def test_a_verdict_never_claims_more_than_its_interval(
    ratio: float, half: float, p: float, threshold: float
) -> None:
    low, high = ratio / math.exp(half), ratio * math.exp(half)
    verdict = classify(ratio, low, high, p, 1 - p, threshold=threshold)
    if verdict == "same":
        assert 1 / (1 + threshold) <= low and high <= 1 + threshold
    if verdict == "REGRESSION":
        assert low > 1 + threshold and p < 0.01
    if verdict == "IMPROVEMENT":
        assert high < 1 / (1 + threshold) and 1 - p < 0.01
    if low > 1 + threshold or high < 1 / (1 + threshold):
        assert verdict != "same"  # a change beyond the threshold is never called "same"

"""Statistics of a verdict, checked against reference values (computed once with scipy 1.16
and written down, so these tests need no scipy) and against properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlperf.stats import (
    bootstrap_ratio_ci,
    compare_samples,
    mann_whitney,
    memory_verdict,
    summarize,
)

X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.07, 3.14, 1.28]  # no ties with X: exact path
A = [1, 2, 2, 3, 3, 3, 4, 5]
B = [3, 4, 4, 5, 5, 6, 7, 7, 8]  # ties: normal approximation with tie correction


def test_exact_p_values_match_reference() -> None:
    r = mann_whitney(X, Y, "greater")
    assert r.exact and r.u == 58.0
    assert r.p == pytest.approx(0.06795557383792677, rel=1e-12)
    assert mann_whitney(X, Y, "two-sided").p == pytest.approx(0.13591114767585355, rel=1e-12)


def test_tied_p_values_match_reference() -> None:
    r = mann_whitney(A, B, "less")
    assert not r.exact and r.u == 7.5
    assert r.p == pytest.approx(0.0031865669190429364, rel=1e-12)
    assert mann_whitney(A, B, "two-sided").p == pytest.approx(0.006373133838085873, rel=1e-12)


def test_exact_distribution_small_case_by_hand() -> None:
    # m = n = 2: the 6 arrangements give U = 0,1,2,2,3,4, so P(U >= 4) = 1/6
    assert mann_whitney([3.0, 4.0], [1.0, 2.0], "greater").p == pytest.approx(1 / 6)
    assert mann_whitney([1.0, 2.0], [3.0, 4.0], "greater").p == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.1, 10), min_size=3, max_size=40),
    st.lists(st.floats(0.1, 10), min_size=3, max_size=40),
)
def test_one_sided_p_values_are_complementary(x: list[float], y: list[float]) -> None:
    g, le = mann_whitney(x, y, "greater"), mann_whitney(x, y, "less")
    assert 0 <= g.p <= 1 and 0 <= le.p <= 1
    # P(U >= u) + P(U <= u) = 1 + P(U = u) >= 1 (exactly 1 + point mass; the normal approximation
    # with continuity correction keeps the sum >= 1 too)
    assert g.p + le.p >= 1 - 1e-9
    assert mann_whitney(y, x, "greater").p == pytest.approx(le.p)


def test_empty_or_non_finite_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="needs at least one sample"):
        summarize([])
    with pytest.raises(ValueError, match=r"samples must be finite; got \[nan\]"):
        mann_whitney([1.0, float("nan")], [1.0])
    with pytest.raises(ValueError, match="alternative must be"):
        mann_whitney([1.0], [2.0], "bigger")  # type: ignore[arg-type]


def test_summary() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert (s.n, s.median, s.min, s.mean) == (4, 2.5, 1.0, 2.5)
    assert s.iqr == pytest.approx(1.5)


def test_compare_samples_verdicts() -> None:
    rng = np.random.default_rng(0)
    base = rng.lognormal(0, 0.05, 60)
    assert compare_samples(base, base * 2, max_regression=0.25).verdict == "REGRESSION"
    # significant, but well inside the 25 % tolerance: the same, not "slower"
    assert compare_samples(base, base * 1.10, max_regression=0.25).verdict == "same"
    assert compare_samples(base, base * 0.5, max_regression=0.25).verdict == "IMPROVEMENT"
    assert compare_samples(base, rng.permutation(base), max_regression=0.25).verdict == "same"
    # a 2x ratio on 2 vs 2 samples is never significant at 0.01, nor is it the same
    assert compare_samples([1.0, 1.1], [2.0, 2.2], max_regression=0.25).verdict == "inconclusive"
    # a change near the tolerance whose interval straddles it is not claimed either way
    assert compare_samples(base, base * 1.25, max_regression=0.25).verdict == "inconclusive"
    with pytest.raises(ValueError, match="max_regression must be a finite number >= 0; got nan"):
        compare_samples(base, base, max_regression=float("nan"))


def test_bootstrap_interval_covers_the_true_ratio_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    base, head = rng.lognormal(0, 0.1, 80), rng.lognormal(math.log(1.2), 0.1, 80)
    lo, hi = bootstrap_ratio_ci(base, head, seed=3)
    assert lo < 1.2 < hi and hi - lo < 0.2
    assert (lo, hi) == bootstrap_ratio_ci(base, head, seed=3)


def test_memory_verdict_needs_ratio_and_absolute_growth() -> None:
    mib = 2**20
    assert memory_verdict(10 * mib, 13 * mib, max_regression=0.1) == "REGRESSION"
    assert memory_verdict(100, 1000, max_regression=0.1) == "same"  # tiny peaks: allocator noise
    assert memory_verdict(10 * mib, 10.5 * mib, max_regression=0.1) == "same"
    assert memory_verdict(10 * mib, 4 * mib, max_regression=0.1) == "lower"


def test_a_comparison_reads_as_every_gate_writes_it() -> None:
    rng = np.random.default_rng(2)
    base = rng.lognormal(0, 0.02, 100)
    text = compare_samples(base, base * 1.5, max_regression=0.25).describe()
    assert text.startswith("+50.0% (+") and text.endswith(") REGRESSION")
    assert "p=" not in text

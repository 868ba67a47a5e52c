"""The tutorial's forest on every engine, and the check that its label leaks nothing.

The tutorial labels ``purchase_amount > mean`` on an exponential (36.8 % positive) and
trains on age, income and purchase_count, which are independent of it: every
engine's "accuracy" is the majority rate (~0.63) and means nothing.  Balanced
accuracy is ~0.5 there, and ~1.0 once ``purchase_amount`` itself is a feature,
which proves the check can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dist_helpers import DISTRIBUTED

from mlperf.data import make_purchases
from mlperf.distributed.common import ForestResult

#: small enough to fit the test budget, large enough for a +-0.03 balanced accuracy
N_ROWS, N_TREES, DEPTH = 20_000, 20, 6

ENGINES = DISTRIBUTED


def _train(engine: str, data: Any, **kwargs: Any) -> ForestResult:
    module = __import__(f"mlperf.distributed.{engine}", fromlist=["train_forest"])
    return module.train_forest(data, n_trees=N_TREES, max_depth=DEPTH, **kwargs)


@pytest.fixture(scope="module")
def purchases() -> pd.DataFrame:
    return make_purchases(N_ROWS, seed=3)


@pytest.mark.parametrize(("engine", "fixture"), ENGINES)
def test_seed_label_leaks_nothing(
    engine: str, fixture: str, purchases: pd.DataFrame, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(fixture)
    result = _train(engine, purchases)
    majority = max(
        p := float((purchases.purchase_amount > purchases.purchase_amount.mean()).mean()), 1 - p
    )
    assert abs(result.balanced_accuracy - 0.5) < 0.03, result
    # The tutorial's metric: indistinguishable from always answering the majority class.
    assert abs(result.accuracy - majority) < 0.03, result
    assert list(result.feature_importances.index) == ["age", "income", "purchase_count"]
    assert result.feature_importances.sum() == pytest.approx(1.0)
    assert 0.7 < result.n_test / (result.n_train + result.n_test) * 5 < 1.3
    assert set(result.timings) == {"load", "fit", "score", "total"}


@pytest.mark.parametrize(("engine", "fixture"), ENGINES)
def test_leaky_feature_is_caught(
    engine: str, fixture: str, purchases: pd.DataFrame, request: pytest.FixtureRequest
) -> None:
    """With the label's own source as a feature the same check reads ~1.0: it can fail."""
    request.getfixturevalue(fixture)
    result = _train(engine, purchases, features=("age", "purchase_amount"))
    assert result.balanced_accuracy > 0.97, result
    assert result.feature_importances.idxmax() == "purchase_amount"


@pytest.mark.parametrize(("engine", "fixture"), ENGINES)
def test_forest_rejects_bad_input(
    engine: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    request.getfixturevalue(fixture)
    df = make_purchases(200)
    train = __import__(f"mlperf.distributed.{engine}", fromlist=["train_forest"]).train_forest
    with pytest.raises(ValueError, match=r"n_trees.*0"):
        train(df, n_trees=0)
    with pytest.raises(KeyError, match="'height'"):
        _train(engine, df, features=("age", "height"))
    with pytest.raises(ValueError, match=r"'income'.*missing"):
        _train(engine, df.assign(income=df.income.where(df.index > 3)))


# ----------------------------------------------------------------------- Ray Tune


@pytest.mark.mlperf_ray
@pytest.mark.xdist_group("ray")
def test_tune_survives_a_failing_trial_and_asha_stops_weak_ones(
    ray_runtime: Any, tmp_path: Path
) -> None:
    """One search (trials are costly) over a grid holding an invalid depth (0).

    Fault: the three max_depth=0 trials raise in scikit-learn; the other six finish
    and the failures are reported.  ASHA: trials report after each of 4 growth steps,
    so it can and does stop the weak (depth 2) ones early.  Plots: the tutorial's two.
    """
    from mlperf.distributed.ray import make_tuning_data, tune_forest

    X, y = make_tuning_data(2_000)
    tuned = tune_forest(X, y, n_estimators=(10, 20, 40), max_depth=(2, 8, 0), plot_dir=tmp_path)

    assert len(tuned.trials) == 9
    assert sorted(tuned.errors["max_depth"]) == [0, 0, 0]
    assert tuned.errors["error"].str.contains("InvalidParameterError.*max_depth").all()
    ok = tuned.trials[tuned.trials["error"].isna()]
    assert len(ok) == 6 and ok["accuracy"].notna().all()
    assert tuned.best_config["max_depth"] == 8
    assert tuned.best_score == ok[~ok["stopped_early"]]["accuracy"].max()

    stopped = ok[ok["stopped_early"]]
    assert len(stopped) >= 1, ok
    assert (stopped["iterations"] < 4).all()
    assert (stopped["n_trees"] < stopped["n_estimators"]).all()
    assert (ok[ok["max_depth"] == 8]["iterations"] == 4).all()

    assert sorted(Path(p).name for p in tuned.plots) == [
        "tune_max_depth.png",
        "tune_n_estimators.png",
    ]
    for p in tuned.plots:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

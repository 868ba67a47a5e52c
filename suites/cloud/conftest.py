"""Fixtures every cloud provider's suite shares: the tutorial's training data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest


def seed_frame(n_rows: int = 600, seed: int = 42) -> pd.DataFrame:
    """The tutorial's cloud data: 10 normal features, target = (sum > 0)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_rows, 10))
    frame = pd.DataFrame(x, columns=[f"feature_{i}" for i in range(10)])
    frame["target"] = (x.sum(axis=1) > 0).astype(np.int64)
    return frame


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pd.DataFrame]:
    """Factory of the tutorial's cloud frames: ``make_frame(n_rows, seed=42)``."""
    return seed_frame


@pytest.fixture(scope="session")
def train_frame() -> pd.DataFrame:
    """600 rows of the tutorial's cloud data."""
    return seed_frame()

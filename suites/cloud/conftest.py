"""Fixtures every cloud provider's suite shares: the tutorial's training data, and the
check that the offline servers (moto, the GCS emulator, the Vertex fake, Azurite)
listen on loopback only."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from mlperf.distributed.network import listening_sockets, process_tree


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


@pytest.fixture
def assert_loopback_only() -> Callable[..., None]:
    """``check(url, ...)``: each URL's port is a listening socket of this process tree,
    and no socket of the tree listens beyond loopback (issue 14 item 1)."""

    def check(*urls: str) -> None:
        sockets = listening_sockets(process_tree())
        ports = {urlsplit(url).port for url in urls}
        assert ports <= {s.port for s in sockets}, (urls, [str(s) for s in sockets])
        assert [str(s) for s in sockets if not s.loopback] == []

    return check

"""Fixtures for the tests of mlperf itself."""

from __future__ import annotations

# pytester's in-process runs unload modules imported during a run; C extensions such as
# numpy cannot be loaded twice in one process, so they are imported here, once, up front.
import numpy  # noqa: F401
import pandas  # noqa: F401
import psutil  # noqa: F401
import pytest

TOY = """
import os
import time

import pytest

def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

def test_toy(benchmark):
    factor = float(os.environ.get("TOY_SLOWDOWN", "1"))
    assert benchmark(work, int(30_000 * factor)) > 0

_calls = []

@pytest.mark.mlperf(metric="wall")
def test_steady(benchmark):
    # The gate tests compare this one: the wall time of a sleep does not swing with the
    # CPU-speed states of a shared VM, which moved a pure-Python loop by up to 1.8x
    # (2026-11-27, a 2-core CI VM).
    factor = float(os.environ.get("TOY_SLOWDOWN", "1"))
    if os.environ.get("TOY_SLOW_ONCE"):  # a slow spell: only the session's first measurement
        factor = 1.0 if _calls else 2.0
        _calls.append(factor)
    benchmark(time.sleep, 0.002 * factor)

@pytest.mark.mlperf(max_regression=1.0)  # its peak memory is what it is for; its time swings
def test_toy_memory(benchmark):
    size = int(os.environ.get("TOY_BYTES", "4000000"))
    assert len(benchmark(lambda: bytearray(size))) == size
"""


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs under pytester must not inherit this process's xdist identity (which turns
    pytest-benchmark off in them) when the outer suite runs with ``-n``."""
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with a pure-Python, a sleeping and a memory-allocating benchmark."""
    pytester.makepyfile(test_toy=TOY)
    return pytester

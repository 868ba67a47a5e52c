"""The gate's test subjects: three kinds of benchmark with a slowdown knob.

``MLPERF_GATE_SLOWDOWN=0.05`` makes each benchmark do 5 % more of its own work:
every body is a loop over ``UNITS`` equal units of work (row blocks of a matrix,
chunks of a frame, runs of a Python loop), and the knob adds ``UNITS * s`` more
units, whose results are computed and then dropped.  So "+5 %" is +5 % of the
same instructions, not a sleep, and a gate that detects it detects real work.
``gate_eval.py`` runs ``mlperf ab`` on these with and without the knob.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from mlperf.data import REGIONS

#: units of work in one call without slowdown; the knob must be a multiple of 1/UNITS
UNITS = 40
KNOB = "MLPERF_GATE_SLOWDOWN"


def units() -> int:
    """Units per call for the slowdown in ``$MLPERF_GATE_SLOWDOWN`` (default 0)."""
    raw = os.environ.get(KNOB, "0") or "0"
    try:
        slowdown = float(raw)
    except ValueError:
        raise ValueError(f"{KNOB} must be a fraction such as 0.05; got {raw!r}") from None
    extra = slowdown * UNITS
    if slowdown < 0 or abs(extra - round(extra)) > 1e-9:
        raise ValueError(
            f"{KNOB} must be a non-negative multiple of 1/{UNITS} (0.025); got {raw!r}"
        )
    return UNITS + round(extra)


def row_norms(blocks: np.ndarray, n_units: int) -> np.ndarray:
    """numpy-bound: L2 norm of every row, one block of rows per unit.

    Every unit does the same work, the store included: units past ``UNITS``
    recompute earlier blocks into a scratch row, so the knob adds exactly its share
    of the work and the result does not change.
    """
    out = np.empty((UNITS + 1, blocks.shape[1]))
    for i in range(n_units):
        block = blocks[i % UNITS]
        out[min(i, UNITS)] = np.sqrt((block * block).sum(axis=1))
    return out[:UNITS].ravel()


def checksum(n_units: int, per_unit: int = 1500) -> int:
    """Pure Python: an integer loop, ``per_unit`` steps per unit; extra units go to scratch."""
    sums = [0, 0]
    for i in range(n_units):
        part = 0
        for j in range(per_unit):
            part += (j * j + i % UNITS) % 7
        sums[i >= UNITS] += part
    return sums[0]


def region_sums(chunks: list[pd.DataFrame], n_units: int) -> pd.DataFrame:
    """pandas: per-region sum and count of purchase_amount, one groupby per chunk.

    Each unit adds its (region x [sum, count]) block into a running total (extra
    units into a scratch one), so all the work is in the units and +5 % of units is
    +5 % of the work; the frame is built once at the end.
    """
    totals = np.zeros((2, len(REGIONS), 2))
    index = None
    for i in range(n_units):
        part = chunks[i % UNITS].groupby("region")["purchase_amount"].agg(["sum", "count"])
        totals[int(i >= UNITS)] += part.to_numpy()
        index = part.index
    out = pd.DataFrame(totals[0], index=index, columns=["sum", "count"])
    return out.astype({"count": "int64"})


@pytest.fixture(scope="module")
def matrix_blocks(matrix_10k: np.ndarray) -> np.ndarray:
    return matrix_10k.reshape(UNITS, -1, matrix_10k.shape[1])


#: rows the pandas kind aggregates: 40 chunks of 500, a ~15 ms body, so 1 s of measuring is
#: ~60 rounds
PANDAS_ROWS = 20_000


@pytest.fixture(scope="module")
def purchases(purchases_100k: pd.DataFrame) -> pd.DataFrame:
    return purchases_100k.iloc[:PANDAS_ROWS]


@pytest.fixture(scope="module")
def purchase_chunks(purchases: pd.DataFrame) -> list[pd.DataFrame]:
    size = len(purchases) // UNITS
    return [purchases.iloc[i * size : (i + 1) * size].reset_index(drop=True) for i in range(UNITS)]


def test_gate_numpy(
    benchmark: pytest.FixtureRequest, matrix_blocks: np.ndarray, matrix_10k: np.ndarray
) -> None:
    result = benchmark(row_norms, matrix_blocks, units())
    np.testing.assert_allclose(result, np.linalg.norm(matrix_10k, axis=1), rtol=1e-12)


def test_gate_python(benchmark: pytest.FixtureRequest) -> None:
    result = benchmark(checksum, units())
    # sum over i < UNITS, j < 1500 of (j*j + i) % 7, counted by residues instead of looping
    sq = np.bincount(np.arange(1500) ** 2 % 7, minlength=7)
    expected = sum(int(sq[r]) * ((r + i) % 7) for i in range(UNITS) for r in range(7))
    assert result == expected


def test_gate_pandas(
    benchmark: pytest.FixtureRequest, purchase_chunks: list[pd.DataFrame], purchases: pd.DataFrame
) -> None:
    result = benchmark(region_sums, purchase_chunks, units())
    full = purchases.groupby("region")["purchase_amount"].agg(["sum", "count"])
    pd.testing.assert_frame_equal(result, full, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("value", ["0", "0.05", "0.1", "0.25", "1"])
def test_knob_adds_exactly_its_share_of_units(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(KNOB, value)
    assert units() == UNITS * (1 + float(value))


@pytest.mark.parametrize("value", ["-0.05", "0.01", "five"])
def test_knob_refuses_values_it_cannot_honour(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(KNOB, value)
    with pytest.raises(ValueError, match=KNOB):
        units()


def test_knob_does_not_change_results(
    monkeypatch: pytest.MonkeyPatch, matrix_blocks: np.ndarray, purchase_chunks: list[pd.DataFrame]
) -> None:
    plain = (row_norms(matrix_blocks, UNITS), checksum(UNITS), region_sums(purchase_chunks, UNITS))
    monkeypatch.setenv(KNOB, "0.25")
    slowed = (
        row_norms(matrix_blocks, units()),
        checksum(units()),
        region_sums(purchase_chunks, units()),
    )
    np.testing.assert_array_equal(plain[0], slowed[0])
    assert plain[1] == slowed[1]
    pd.testing.assert_frame_equal(plain[2], slowed[2])

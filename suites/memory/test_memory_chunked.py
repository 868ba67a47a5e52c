"""Chunked aggregation beside the tutorial's, over a frame and over CSV files.

The tutorial concatenates per-chunk means; chunked_agg merges sufficient statistics
and equals a full groupby.  Targets (measured, not asserted): a 10M-row CSV
aggregated with <= 64 MiB extra peak at >= 0.8x the speed of a full read + groupby.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from memory_helpers import MiB, cpu_ratio, extra_peak
from memory_tutorial import chunked_processing, process_in_chunks
from pandas.testing import assert_frame_equal

from mlperf.data import make_customers
from mlperf.io.chunked import chunked_agg

TUTORIAL_AGGS = {"age": "mean", "income": "mean", "score": "mean"}
FULL_AGGS = {
    "age": ["count", "mean", "std"],
    "income": ["sum", "mean", "var", "min", "max"],
    "score": ["mean", "max"],
}


def full_read(path: Path) -> pd.DataFrame:
    """The plain way: read everything, then group."""
    return pd.read_csv(path).groupby("category").agg(TUTORIAL_AGGS)


def _mean_of_means(chunk_means: pd.DataFrame) -> pd.DataFrame:
    # what a reader of the tutorial does with its 400 rows: average them per group
    return chunk_means.groupby(level=0).mean()


def test_seed_chunk_means_are_not_group_means() -> None:
    """The tutorial's process_in_chunks (and its CSV twin) return per-chunk means; averaging
    them misses the group means.  chunked_agg over the same chunks equals groupby."""
    df = make_customers(20_000)
    truth = df.groupby("category").agg(TUTORIAL_AGGS)
    seed = process_in_chunks(df, chunk_size=1_000)
    assert len(seed) == 20 * 4  # one row per chunk and group, not one per group
    error = (_mean_of_means(seed) - truth).abs().to_numpy().max()
    assert error > 1e-4, error
    ours = chunked_agg(df, "category", TUTORIAL_AGGS, chunksize=1_000)
    assert_frame_equal(ours, truth, rtol=1e-12)


def test_seed_csv_chunk_means_are_not_group_means(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    make_customers(20_000).to_csv(path, index=False)
    truth = full_read(path)
    seed = chunked_processing(path, chunk_size=1_000)
    assert (_mean_of_means(seed) - truth).abs().to_numpy().max() > 1e-4
    assert_frame_equal(chunked_agg(path, "category", TUTORIAL_AGGS, 1_000), truth, rtol=1e-12)


# ------------------------------------------------------------------ over a frame


_TUTORIAL_MEDIAN: dict[str, float] = {}  # the tutorial's timing, for the ratios below


@pytest.mark.mlperf(memory=False)  # it holds one 10k-row chunk: nothing to gate
def test_tutorial_process_in_chunks(benchmark, customers: pd.DataFrame) -> None:
    # one round: its gc.collect() per chunk walks the whole heap of this process
    seed = benchmark.pedantic(process_in_chunks, args=(customers,), rounds=1)
    assert len(seed) == 4 * -(-len(customers) // 10_000)
    if benchmark.enabled:
        _TUTORIAL_MEDIAN["process_in_chunks"] = benchmark.stats.stats.median


@pytest.mark.parametrize("chunksize", [10_000, 100_000])
def test_chunked_agg_frame(benchmark, customers: pd.DataFrame, chunksize: int) -> None:
    def run() -> pd.DataFrame:
        return chunked_agg(customers, "category", FULL_AGGS, chunksize)

    result = benchmark(run)
    assert_frame_equal(result, customers.groupby("category").agg(FULL_AGGS), rtol=1e-12)
    if benchmark.enabled:
        benchmark.extra_info["extra_peak_mib"] = extra_peak(run) / MiB
        if "process_in_chunks" in _TUTORIAL_MEDIAN:  # same session, wall-clock medians
            benchmark.extra_info["time_ratio_vs_tutorial"] = (
                benchmark.stats.stats.median / _TUTORIAL_MEDIAN["process_in_chunks"]
            )


# ------------------------------------------------------------------ over CSV files


def _csv_extra_info(benchmark: Any, path: Path, ours: Callable[[], Any]) -> None:
    if benchmark.enabled:
        mine, full = extra_peak(ours), extra_peak(lambda: full_read(path))
        benchmark.extra_info.update(
            extra_peak_mib=mine / MiB,
            full_read_extra_peak_mib=full / MiB,
            # speed = 1 / time: > 1 means faster than reading the whole file
            speed_vs_full_read=1 / cpu_ratio(ours, lambda: full_read(path), pairs=3),
        )


def test_csv_full_read_groupby(benchmark, customers_csv: Path) -> None:
    result = benchmark(full_read, customers_csv)
    assert result.shape == (4, 3)
    if benchmark.enabled:
        benchmark.extra_info["extra_peak_mib"] = extra_peak(lambda: full_read(customers_csv)) / MiB


def test_csv_tutorial_chunked_processing(benchmark, customers_csv: Path) -> None:
    seed = benchmark.pedantic(chunked_processing, args=(customers_csv,), rounds=3)
    assert len(seed) > 4  # per-chunk rows: the bug the test above pins down
    _csv_extra_info(benchmark, customers_csv, lambda: chunked_processing(customers_csv))


@pytest.mark.parametrize("chunksize", [100_000])
def test_csv_chunked_agg(benchmark, customers_csv: Path, chunksize: int) -> None:
    def run() -> pd.DataFrame:
        return chunked_agg(customers_csv, "category", TUTORIAL_AGGS, chunksize)

    result = benchmark(run)
    assert_frame_equal(result, full_read(customers_csv), rtol=1e-12)
    _csv_extra_info(benchmark, customers_csv, run)


@pytest.mark.mlperf_slow
def test_csv_10m_chunked_agg(benchmark, customers_csv_10m: Path) -> None:
    def run() -> pd.DataFrame:
        return chunked_agg(customers_csv_10m, "category", TUTORIAL_AGGS, 100_000)

    result = benchmark.pedantic(run, rounds=3)
    assert_frame_equal(result, full_read(customers_csv_10m), rtol=1e-12)
    _csv_extra_info(benchmark, customers_csv_10m, run)
    assert np.isfinite(result.to_numpy()).all()

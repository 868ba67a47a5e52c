"""Seeded generators: deterministic, the tutorial's distributions, bounded-memory writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlperf.data import (
    REGIONS,
    cached_frame,
    make_customers,
    make_matrix,
    make_purchases,
    write_purchases,
)


def test_purchases_are_deterministic_and_shaped_like_the_tutorial() -> None:
    a, b = make_purchases(100_000), make_purchases(100_000)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(make_purchases(100_000, seed=7))
    assert list(a.columns) == [
        "user_id",
        "age",
        "income",
        "purchase_amount",
        "purchase_count",
        "region",
    ]
    assert a["user_id"].between(1, 9_999).all()  # the tutorial's randint(1, 10000) for 1e5 rows
    assert set(a["region"].unique()) == set(REGIONS)
    assert abs(a["age"].mean() - 35) < 0.2 and abs(a["age"].std() - 10) < 0.2
    assert abs(a["income"].mean() - 500) < 3 and abs(a["purchase_amount"].mean() - 100) < 2
    assert abs(a["purchase_count"].mean() - 5) < 0.05
    assert pd.api.types.is_string_dtype(a["region"])


def test_customers_and_matrix() -> None:
    c = make_customers(50_000)
    assert list(c.columns) == ["user_id", "age", "income", "category", "score"]
    assert c["score"].between(0, 100).all() and set(c["category"]) == {"A", "B", "C", "D"}
    m = make_matrix(100, 7)
    assert m.shape == (100, 7) and m.dtype == np.float64 and m.flags.c_contiguous
    np.testing.assert_array_equal(m, make_matrix(100, 7))


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
def test_bad_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"n_rows must be a non-negative integer, got"):
        make_purchases(bad)  # type: ignore[arg-type]


def test_write_purchases_in_chunks(tmp_path: Path) -> None:
    files = write_purchases(tmp_path / "p", 25_000, rows_per_file=10_000)
    assert [f.name for f in files] == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    df = pd.read_parquet(tmp_path / "p")
    assert len(df) == 25_000 and df["user_id"].max() < 2_500
    assert files == write_purchases(
        tmp_path / "p", 25_000, rows_per_file=10_000
    )  # same names, overwritten


def test_cached_frame_round_trips_exactly(tmp_path: Path) -> None:
    first = cached_frame("purchases", 1_000, cache_dir=tmp_path)
    again = cached_frame("purchases", 1_000, cache_dir=tmp_path)
    pd.testing.assert_frame_equal(first, again)
    assert (tmp_path / "purchases-1000-seed42.parquet").exists()
    with pytest.raises(ValueError, match="unknown data set 'sales'"):
        cached_frame("sales", 10, cache_dir=tmp_path)


def layout(df: pd.DataFrame) -> list[tuple[object, ...]]:
    """What a benchmark's speed depends on besides the values: blocks, dtypes, memory."""
    out: list[tuple[object, ...]] = [(type(df.index).__name__, str(df.index.dtype))]
    for block in df._mgr.blocks:  # consolidation: which columns share a 2-D block
        values = block.values
        where = tuple(int(i) for i in block.mgr_locs.as_array)
        if isinstance(values, np.ndarray):
            owner = "numpy" if values.base is None or values.flags.owndata else "foreign"
            flags = (values.flags.c_contiguous, values.flags.f_contiguous, values.flags.writeable)
            out.append((str(block.dtype), where, values.shape, flags, owner))
        else:
            arrow = values._pa_array  # string storage, chunking, validity bitmap
            chunks = [(c.offset, c.buffers()[0] is None) for c in arrow.chunks]
            out.append((repr(block.dtype), where, str(arrow.type), arrow.num_chunks, chunks))
    return out


@pytest.mark.parametrize("kind", ["purchases", "customers"])
def test_a_cached_frame_has_the_layout_of_a_generated_one(kind: str, tmp_path: Path) -> None:
    generated = cached_frame(kind, 20_000, cache_dir=tmp_path)
    cached = cached_frame(kind, 20_000, cache_dir=tmp_path)
    assert (tmp_path / f"{kind}-20000-seed42.parquet").exists()
    pd.testing.assert_frame_equal(generated, cached, check_exact=True)
    assert layout(cached) == layout(generated)
    # a cache file written in row groups (another version, another writer) reads back alike
    other = tmp_path / "other"
    other.mkdir()
    generated.to_parquet(other / f"{kind}-20000-seed42.parquet", row_group_size=3_000)
    assert layout(cached_frame(kind, 20_000, cache_dir=other)) == layout(generated)


@pytest.mark.parametrize("bad", [None, 0, -5, 2.5, "10", True])
def test_write_purchases_refuses_a_bad_rows_per_file(bad: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"rows_per_file must be a positive integer.*got"):
        write_purchases(tmp_path / "p", 10, rows_per_file=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "p").exists()

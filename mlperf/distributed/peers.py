"""Single-machine peers of the engines: the same ``region_summary`` in DuckDB and Polars.

They show what one process with a vectorised engine does with the data the
distributed engines split across workers, so the benchmarks can say where a
cluster pays off on this machine.  Both read a pandas frame or Parquet path(s) and
return exactly the layout of :func:`mlperf.distributed.common.region_summary`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from mlperf._optional import require
from mlperf.distributed.common import (
    INPUT_COLUMNS,
    check_min_users,
    check_purchases,
    finish_summary,
    parquet_path,
)

__all__ = ["duckdb_region_summary", "polars_region_summary"]

# NULLIF(x, 'NaN') turns NaN into NULL, so that, as in pandas, aggregates skip it
# (DuckDB and Spark treat NaN as a number, and one NaN would poison a group).
_SQL = """
SELECT region,
       count(*) AS user_count,
       avg(nullif(age, 'NaN'::DOUBLE)) AS avg_age,
       stddev_samp(nullif(age, 'NaN'::DOUBLE)) AS std_age,
       avg(nullif(income, 'NaN'::DOUBLE)) AS avg_income,
       stddev_samp(nullif(income, 'NaN'::DOUBLE)) AS std_income,
       avg(nullif(purchase_amount, 'NaN'::DOUBLE)) AS avg_purchase,
       sum(nullif(purchase_amount, 'NaN'::DOUBLE)) AS total_purchase
FROM {source}
GROUP BY region
HAVING count(*) > {min_users}
"""


def _parquet_glob(path: Path) -> str:
    return str(path / "*.parquet") if path.is_dir() else str(path)


def duckdb_region_summary(
    data: pd.DataFrame | str | os.PathLike[str], *, min_users: int = 0
) -> pd.DataFrame:
    """``region_summary`` in DuckDB (all cores, one process).

    Parameters
    ----------
    data:
        Purchases frame, or a Parquet file / folder of Parquet files.
    min_users:
        Keep regions with ``user_count > min_users``.

    Returns
    -------
    pandas.DataFrame
        Same layout as :func:`mlperf.distributed.common.region_summary`.
    """
    func = "duckdb_region_summary"
    min_users = check_min_users(min_users, func)
    require("duckdb", "the DuckDB peer")
    import duckdb

    con = duckdb.connect()
    try:
        if isinstance(data, (str, os.PathLike)):
            path = _parquet_glob(parquet_path(data, func))
            source = f"read_parquet('{path.replace(chr(39), chr(39) * 2)}')"
        else:
            frame = check_purchases(data, func).loc[:, list(INPUT_COLUMNS)]
            con.register("purchases", frame)
            source = "purchases"
        out = con.execute(_SQL.format(source=source, min_users=min_users)).fetchdf()
    finally:
        con.close()
    return finish_summary(out, min_users, func)


def polars_region_summary(
    data: pd.DataFrame | str | os.PathLike[str], *, min_users: int = 0
) -> pd.DataFrame:
    """``region_summary`` in Polars (lazy, all cores, one process).

    Parameters
    ----------
    data:
        Purchases frame, or a Parquet file / folder of Parquet files.
    min_users:
        Keep regions with ``user_count > min_users``.

    Returns
    -------
    pandas.DataFrame
        Same layout as :func:`mlperf.distributed.common.region_summary`.
    """
    func = "polars_region_summary"
    min_users = check_min_users(min_users, func)
    require("polars", "the Polars peer")
    import polars as pl

    if isinstance(data, (str, os.PathLike)):
        lf = pl.scan_parquet(_parquet_glob(parquet_path(data, func))).select(list(INPUT_COLUMNS))
    else:
        lf = pl.from_pandas(check_purchases(data, func).loc[:, list(INPUT_COLUMNS)]).lazy()
    # fill_nan(None): Polars, like Spark, counts NaN as a value; pandas skips it.
    lf = lf.with_columns(pl.col("age", "income", "purchase_amount").cast(pl.Float64).fill_nan(None))
    amount = pl.col("purchase_amount")
    out = (
        lf.group_by("region")
        .agg(
            pl.len().alias("user_count"),
            pl.col("age").mean().alias("avg_age"),
            pl.col("age").std(ddof=1).alias("std_age"),
            pl.col("income").mean().alias("avg_income"),
            pl.col("income").std(ddof=1).alias("std_income"),
            amount.mean().alias("avg_purchase"),
            # Polars sums an all-null group to 0; the reference says NaN (nothing to sum).
            pl.when(amount.count() > 0).then(amount.sum()).alias("total_purchase"),
        )
        .filter(pl.col("user_count") > min_users)
        .collect()
    )
    return finish_summary(out.to_pandas(), min_users, func)

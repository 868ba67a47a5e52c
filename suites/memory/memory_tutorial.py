"""The tutorial's memory code, kept as written: the baseline.

THIS IS THE TUTORIAL'S CODE, WITH ITS BUGS.  The suites benchmark it beside
``mlperf.memory`` so the difference shows; never use it as a reference.  Its bugs:

* ``optimize_dtypes`` copies the whole frame first (42 MiB extra at 1M rows) and
  casts every float64 column to float32 unconditionally (every value changes, up
  to 2**-24 relative; values beyond 3.4e38 become inf).  Under pandas 3 its
  ``select_dtypes(include=['object'])`` reaches ``str`` columns only through a
  deprecated shim (Pandas4Warning).
* ``process_in_chunks`` and ``chunked_processing`` return the
  per-chunk means concatenated (400 rows for 100 chunks x 4 groups); averaging
  those is not the group mean when chunks hold groups unequally.
* ``process_in_chunks`` calls ``gc.collect()`` once per chunk.

Only the ``print`` calls and the module-level demo were left out.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd

__all__ = ["chunked_processing", "optimize_dtypes", "process_in_chunks"]


def optimize_dtypes(df):
    """データ型を最適化してメモリ使用量を削減"""
    optimized_df = df.copy()

    # 数値型の最適化
    for col in optimized_df.select_dtypes(include=["int64"]).columns:
        col_min = optimized_df[col].min()
        col_max = optimized_df[col].max()

        if col_min >= np.iinfo(np.int8).min and col_max <= np.iinfo(np.int8).max:
            optimized_df[col] = optimized_df[col].astype(np.int8)
        elif col_min >= np.iinfo(np.int16).min and col_max <= np.iinfo(np.int16).max:
            optimized_df[col] = optimized_df[col].astype(np.int16)
        elif col_min >= np.iinfo(np.int32).min and col_max <= np.iinfo(np.int32).max:
            optimized_df[col] = optimized_df[col].astype(np.int32)

    # 浮動小数点型の最適化
    for col in optimized_df.select_dtypes(include=["float64"]).columns:
        optimized_df[col] = optimized_df[col].astype(np.float32)

    # カテゴリカル型の最適化
    for col in optimized_df.select_dtypes(include=["object"]).columns:
        if optimized_df[col].nunique() / len(optimized_df) < 0.5:
            optimized_df[col] = optimized_df[col].astype("category")

    return optimized_df


def process_in_chunks(df, chunk_size=10000):
    """データをチャンクに分けて処理"""
    results = []

    for i in range(0, len(df), chunk_size):
        chunk = df.iloc[i : i + chunk_size]

        # チャンクでの処理
        chunk_result = chunk.groupby("category").agg(
            {"age": "mean", "income": "mean", "score": "mean"}
        )

        results.append(chunk_result)

        # メモリの解放
        del chunk
        gc.collect()

    return pd.concat(results)


def chunked_processing(file_path, chunk_size=10000):
    """チャンク読み込みによる処理"""
    results = []

    for chunk in pd.read_csv(file_path, chunksize=chunk_size):
        # チャンクでの処理
        chunk_result = chunk.groupby("category").agg(
            {"age": "mean", "income": "mean", "score": "mean"}
        )
        results.append(chunk_result)

    return pd.concat(results)

"""The tutorial's I/O code: its format loop, kept as written.

THIS IS THE TUTORIAL'S CODE, WITH ITS BUGS -- the baseline the suite compares
against, never a reference.  Its problems: it never checks what comes back (its
default JSON keeps 10 decimals, so every float changes; CSV widens and retypes
columns; its HDF5 "fixed" format cannot store categories), it times one run per
format with ``time.time()``, and it writes ``test_data.*`` into the working
directory.  Two changes, both marked: files go to *directory*, and the loaded
frames are returned so the suite can show what changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

__all__ = ["FORMATS", "format_loop"]

# 各種フォーマットでの保存と読み込み時間の比較
FORMATS = {
    "CSV": {
        "save": lambda df, path: df.to_csv(path, index=False),
        "load": lambda path: pd.read_csv(path),
    },
    "Parquet": {
        "save": lambda df, path: df.to_parquet(path),
        "load": lambda path: pd.read_parquet(path),
    },
    "HDF5": {
        "save": lambda df, path: df.to_hdf(path, key="data"),
        "load": lambda path: pd.read_hdf(path, key="data"),
    },
    "Pickle": {
        "save": lambda df, path: df.to_pickle(path),
        "load": lambda path: pd.read_pickle(path),
    },
    "JSON": {"save": lambda df, path: df.to_json(path), "load": lambda path: pd.read_json(path)},
}


def format_loop(df, directory):  # the tutorial's loop; returns (io_results, loaded)
    io_results = {}
    loaded = {}  # CHANGED: keep what came back

    for format_name, format_funcs in FORMATS.items():
        # 保存時間の測定
        save_path = Path(directory) / f"test_data.{format_name.lower()}"  # CHANGED: directory
        start_time = time.time()
        format_funcs["save"](df, save_path)
        save_time = time.time() - start_time

        # 読み込み時間の測定
        start_time = time.time()
        loaded_df = format_funcs["load"](save_path)
        load_time = time.time() - start_time

        # ファイルサイズの測定
        file_size = Path(save_path).stat().st_size / 1024 / 1024  # MB

        io_results[format_name] = {
            "save_time": save_time,
            "load_time": load_time,
            "file_size": file_size,
        }
        loaded[format_name] = loaded_df

        # ファイルの削除
        Path(save_path).unlink()

    return io_results, loaded

"""Helpers of the distributed suite: result comparison, process-tree memory, the engine table."""

from __future__ import annotations

import csv
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import psutil
import pytest

from mlperf.distributed.common import SUMMARY_COLUMNS

__all__ = [
    "DISTRIBUTED",
    "EngineTable",
    "TreeRss",
    "assert_ray_requires_token",
    "assert_summary_equal",
]

#: ``(engine, fixture)`` parameters of the three distributed engines, each with its marker
#: and its xdist group (one worker owns each engine's session)
DISTRIBUTED = [
    pytest.param(
        "spark", "spark", marks=[pytest.mark.mlperf_spark, pytest.mark.xdist_group("spark")]
    ),
    pytest.param(
        "dask", "dask_client", marks=[pytest.mark.mlperf_dask, pytest.mark.xdist_group("dask")]
    ),
    pytest.param(
        "ray", "ray_runtime", marks=[pytest.mark.mlperf_ray, pytest.mark.xdist_group("ray")]
    ),
]


def assert_summary_equal(got: pd.DataFrame, expected: pd.DataFrame, scale: float = 1.0) -> None:
    """Counts exact, floats within rtol 1e-9 (+ an atol of 1e-12 x the data's magnitude,
    for stds of groups whose values are all equal, which are 0 only up to rounding)."""
    assert list(got.columns) == list(SUMMARY_COLUMNS)
    assert got.index.name == "region"
    assert list(got.index) == list(expected.index)
    pd.testing.assert_series_equal(got["user_count"], expected["user_count"], check_exact=True)
    for col in SUMMARY_COLUMNS[1:]:
        pd.testing.assert_series_equal(
            got[col], expected[col], check_exact=False, rtol=1e-9, atol=1e-12 * max(scale, 1.0)
        )


def _ray_token() -> str:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    token = Path(path).read_text().strip() if path else os.environ.get("RAY_AUTH_TOKEN", "")
    assert token, "neither RAY_AUTH_TOKEN nor RAY_AUTH_TOKEN_PATH is set while Ray runs"
    return token


def assert_ray_requires_token(ray: Any) -> None:
    """One cheap gRPC call each to the GCS and the raylet of the running Ray: refused
    without the token and with a wrong one, answered with the right one (so the
    refusal is the token's doing, not a wrong method name)."""
    import grpc

    node = next(n for n in ray.nodes() if n["Alive"])
    targets = {
        ray.get_runtime_context().gcs_address: "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
        f"{node['NodeManagerAddress']}:{node['NodeManagerPort']}": (
            "/ray.rpc.NodeManagerService/GetNodeStats"
        ),
    }
    good = [("authorization", f"Bearer {_ray_token()}")]
    bad = [("authorization", "Bearer " + "0" * 64)]
    for target, method in targets.items():
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary(method)
            for metadata in (None, bad):
                with pytest.raises(grpc.RpcError) as refused:
                    call(b"", metadata=metadata, timeout=30)
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, (target, method)
            assert call(b"", metadata=good, timeout=30) is not None


class TreeRss:
    """Peak resident memory of this process and all its descendants (engine JVMs,
    Dask workers, Ray's raylet and workers), sampled every 20 ms while the block runs;
    the table reports ``peak - baseline`` (what the operation added).  Shared pages
    count once per process: an upper bound."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self.baseline = 0
        self._stop = threading.Event()

    @staticmethod
    def _sample() -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._sample())

    def __enter__(self) -> Self:
        self.baseline = self.peak = self._sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


@dataclass
class Row:
    operation: str
    source: str
    rows: int
    engine: str
    median_s: float
    min_s: float
    rounds: int
    tree_peak_mb: float


class EngineTable:
    """Benchmarks report here; at session end the table (md + csv) and the time-vs-rows
    plot go to ``<report dir>/distributed``."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def record(
        self,
        benchmark: Any,
        operation: str,
        source: str,
        rows: int,
        engine: str,
        tree: TreeRss | None = None,
    ) -> None:
        stats = getattr(getattr(benchmark, "stats", None), "stats", None)
        peak = ((tree.peak - tree.baseline) / 2**20) if tree else float("nan")
        if tree:
            benchmark.extra_info["tree_extra_peak_rss_mb"] = round(peak, 1)
        if stats is None or not getattr(stats, "data", None):
            return  # correctness mode: nothing was timed
        self.rows.append(
            Row(
                operation,
                source,
                rows,
                engine,
                float(stats.median),
                float(stats.min),
                len(stats.data),
                peak,
            )
        )

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame([r.__dict__ for r in self.rows])
        if df.empty:
            return df
        base = df[df["engine"].isin(["pandas", "scikit-learn"])].set_index(
            ["operation", "source", "rows"]
        )["median_s"]
        key = list(zip(df["operation"], df["source"], df["rows"], strict=True))
        df["x_pandas"] = [m / base.get(k, np.nan) for m, k in zip(df["median_s"], key, strict=True)]
        return df.sort_values(["operation", "source", "rows", "median_s"]).reset_index(drop=True)

    def crossover(self, df: pd.DataFrame) -> dict[str, str]:
        """Per engine and source: the smallest size at which it beats pandas, or 'never here'."""
        out = {}
        rs = df[df["operation"] == "region_summary"]
        for (engine, source), g in rs.groupby(["engine", "source"]):
            if engine == "pandas":
                continue
            wins = g[g["x_pandas"] < 1.0]["rows"]
            out[f"{engine} ({source})"] = (
                f"{int(wins.min()):,} rows"
                if len(wins)
                else (f"never up to {int(g['rows'].max()):,} rows")
            )
        return out

    def write(self, folder: Path) -> None:
        df = self.frame()
        if df.empty:
            return
        folder.mkdir(parents=True, exist_ok=True)
        df.to_csv(folder / "engines.csv", index=False, quoting=csv.QUOTE_MINIMAL)
        lines = [
            "# Engines on this machine (wall time, median; noisy shared 2-core machine)",
            "",
            "| operation | source | rows | engine | median s | min s | x pandas | extra tree MB | "
            "rounds |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in df.itertuples():
            lines.append(
                f"| {r.operation} | {r.source} | {r.rows:,} | {r.engine} | {r.median_s:.4f} | "
                f"{r.min_s:.4f} | {r.x_pandas:.2f} | {r.tree_peak_mb:.0f} | {r.rounds} |"
            )
        lines += ["", "## Where each engine beats pandas (region_summary)", ""]
        lines += [f"- {k}: {v}" for k, v in self.crossover(df).items()]
        (folder / "engines.md").write_text("\n".join(lines) + "\n")
        self._plot(df, folder / "time_vs_rows.png")

    @staticmethod
    def _plot(df: pd.DataFrame, path: Path) -> None:
        from matplotlib.figure import Figure

        rs = df[df["operation"] == "region_summary"]
        sources = sorted(rs["source"].unique())
        if not sources:
            return
        fig = Figure(figsize=(7.5 * len(sources), 5), layout="tight")
        axes = np.atleast_1d(fig.subplots(1, len(sources)))
        palette = dict(
            zip(sorted(rs["engine"].unique()), [f"C{i}" for i in range(10)] * 3, strict=False)
        )
        for ax, source in zip(axes, sources, strict=True):
            for engine, g in rs[rs["source"] == source].groupby("engine"):
                g = g.sort_values("rows")
                ax.plot(g["rows"], g["median_s"], marker="o", label=engine, color=palette[engine])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("rows")
            ax.set_ylabel("wall seconds (median)")
            ax.set_title(f"region_summary from {source}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.savefig(path, dpi=100)

"""The report's charts (matplotlib, Agg backend: files only, no display)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypedDict

from mlperf.records import DEFAULT_METRIC

if TYPE_CHECKING:
    from mlperf.records import BaselineEntry

__all__ = ["RatioRow", "plot_ratios", "plot_trends", "pyplot", "short_id"]


class RatioRow(TypedDict):
    """One benchmark in the ratio chart: median ratio to its baseline, interval, gate limit."""

    id: str
    ratio: float
    lo: float
    hi: float
    limit: float
    verdict: str


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (files only: no display, no GUI toolkit)."""
    from mlperf._optional import require

    require("matplotlib", "the report's charts").use("Agg")
    require("matplotlib.pyplot", "the report's charts")
    import matplotlib.pyplot as plt

    return plt


_COLOURS = {"REGRESSION": "#c62828", "slower": "#ef6c00", "faster": "#2e7d32", "same": "#1565c0"}


def plot_ratios(rows: list[RatioRow], path: Path) -> Path:
    """Forest plot: each benchmark's median ratio to its baseline with the 95 % interval."""
    pyplot()
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(rows)))
    for y, r in enumerate(rows):
        colour = _COLOURS.get(r["verdict"], "#555555")
        ax.plot([r["lo"], r["hi"]], [y, y], color=colour, lw=2)
        ax.plot([r["ratio"]], [y], "o", color=colour)
        ax.plot([r["limit"]], [y], "|", color="#c62828", ms=10)
    ax.axvline(1.0, color="#333333", lw=0.8)
    ax.set_yticks(range(len(rows)), [short_id(r["id"]) for r in rows], fontsize=7)
    ax.set_xscale("log")
    for axis_fmt in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_fmt(FuncFormatter(lambda v, _pos: f"{v:.2f}x"))
    ax.set_xlabel(
        "median ratio to baseline (log scale); bar = 95 % bootstrap interval, red tick = gate limit"
    )
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_trends(
    history: list[dict[str, Any]], stored: Mapping[str, BaselineEntry], suite: str, path: Path
) -> Path | None:
    """Small multiples: a benchmark's median per run, regressions as red x, baseline dashed."""
    series: dict[str, list[tuple[int, float, bool]]] = {}
    for index, run in enumerate(history):
        for rec in run.get("benchmarks", []):
            if rec.get("suite") != suite:
                continue
            med = (rec.get(rec.get("metric", DEFAULT_METRIC)) or {}).get("median")
            if med is not None:
                bad = (rec.get("verdict") or {}).get("time") == "REGRESSION"
                series.setdefault(rec["id"], []).append((index, med * 1e3, bad))
    if not series:
        return None
    pyplot()
    import matplotlib.pyplot as plt

    cols = min(3, len(series))
    nrows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 2.4 * nrows), squeeze=False)
    for ax, (bid, pts) in zip(axes.flat, sorted(series.items()), strict=False):
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, "-o", ms=3, color="#1565c0", lw=1)
        marked = [(p[0], p[1]) for p in pts if p[2]]
        if marked:
            ax.plot(
                *zip(*marked, strict=True), "x", color="#c62828", ms=9, mew=2, label="REGRESSION"
            )
            ax.legend(fontsize=6)
        ref = stored.get(bid)
        ref_clock = ref.get(ref.get("metric", DEFAULT_METRIC)) if ref else None
        ref_med = ref_clock.get("median") if ref_clock else None
        if ref_med is not None:
            ax.axhline(ref_med * 1e3, color="#777777", ls="--", lw=0.8)
        ax.set_title(short_id(bid), fontsize=7)
        ax.set_ylabel("median ms", fontsize=7)
        ticks = sorted({p[0] for p in pts})[:: max(1, len(pts) // 5)]
        ax.set_xticks(
            ticks, [_label(history[t].get("created")) for t in ticks], rotation=30, ha="right"
        )
        ax.set_xlim(min(xs) - 0.5, max(xs) + 0.5)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(series) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _label(created: Any) -> str:
    try:
        return datetime.fromisoformat(str(created)).strftime("%m-%d %H:%M")
    except ValueError:
        return "?"


def short_id(bid: str) -> str:
    path, _, name = bid.partition("::")
    return f"{Path(path).stem.removeprefix('test_')}::{name}" if name else bid

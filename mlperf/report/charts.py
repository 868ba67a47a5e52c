"""The report's static chart, the ratio to the baselines (matplotlib, Agg backend: files only)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    pass

__all__ = ["RatioRow", "plot_ratios", "pyplot", "short_id"]


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


def short_id(bid: str) -> str:
    path, _, name = bid.partition("::")
    return f"{Path(path).stem.removeprefix('test_')}::{name}" if name else bid

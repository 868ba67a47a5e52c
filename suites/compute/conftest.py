"""Fixtures of the compute suite: the 400 MB matrix and the row-norm report.

Every benchmark in this family hands its timing to ``compute_report``; at the end of
a session that timed anything, the report writes ``row_norms.md`` (table and the
targets), ``row_norms.csv`` and ``row_norms.png`` under ``<report dir>/compute``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: the issue's targets: what -> (limit, higher is better)
TARGETS = {
    "best method / L3 read bound (10000x100)": (1.5, False),
    "Python loop / numba (the tutorial's @njit)": (300.0, True),
    "Python loop / numba_fastmath": (300.0, True),
    "safe / best method": (10.0, False),
}


@dataclass
class Timing:
    """One benchmark's figures: median seconds per call and the memory bound's."""

    size: str
    method: str
    median_s: float
    bound_s: float
    device: str = "cpu"
    clock: str = "wall"
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def multiple(self) -> float:
        return self.median_s / self.bound_s


class ComputeReport:
    """Collects timings during the session and writes the table and chart at its end."""

    def __init__(self) -> None:
        self.timings: list[Timing] = []

    def record(
        self,
        benchmark: Any,
        size: str,
        method: str,
        bound_s: float,
        *,
        median_s: float | None = None,
        clock: str = "wall",
        device: str = "cpu",
        **extra: float,
    ) -> None:
        """Put the bound and multiple in ``benchmark.extra_info`` and keep the row.

        ``median_s`` defaults to the benchmark's (wall) median; ``clock`` names the
        clock both medians were taken on.  Does nothing in correctness mode
        (``--benchmark-disable``), where nothing is timed.
        """
        stats = getattr(benchmark, "stats", None)
        if stats is None:
            return
        median = float(stats.stats.median) if median_s is None else median_s
        timing = Timing(size, method, median, bound_s, device, clock, extra)
        benchmark.extra_info.update(
            bound_ms=round(bound_s * 1e3, 5),
            multiple_of_bound=round(timing.multiple, 3),
            multiple_clock=clock,
            **extra,
        )
        self.timings.append(timing)

    def targets(self) -> list[tuple[str, float, float, bool]]:
        """(target, measured, limit, met) for each target the session has figures for."""
        cpu = {(t.size, t.method): t for t in self.timings if t.device == "cpu"}
        small = {m: t for (s, m), t in cpu.items() if s == "10000x100" and m != "tutorial_parallel"}
        found: list[tuple[str, float, float, bool]] = []
        if not small:
            return found
        best = min(small.values(), key=lambda t: t.median_s)
        measured = {"best method / L3 read bound (10000x100)": best.multiple}
        for name in ("numba", "numba_fastmath"):
            if "python" in small and name in small:
                what = f"Python loop / {name}" + (
                    " (the tutorial's @njit)" if name == "numba" else ""
                )
                measured[what] = small["python"].median_s / small[name].median_s
        if "safe" in small:
            measured["safe / best method"] = small["safe"].median_s / best.median_s
        for what, value in measured.items():
            limit, higher = TARGETS[what]
            found.append((what, value, limit, value >= limit if higher else value <= limit))
        return found

    def write(self, directory: Path) -> None:
        """Write row_norms.md, row_norms.csv and row_norms.png into ``directory``."""
        if not self.timings:
            return
        directory.mkdir(parents=True, exist_ok=True)
        rows = sorted(self.timings, key=lambda t: (t.device, t.size, t.median_s))
        with open(directory / "row_norms.csv", "w", newline="") as fh:
            writer = csv.DictWriter(
                fh, ["device", "size", "method", "median_ms", "bound_ms", "x_bound"]
            )
            writer.writeheader()
            for t in rows:
                writer.writerow(
                    {
                        "device": t.device,
                        "size": t.size,
                        "method": t.method,
                        "median_ms": f"{t.median_s * 1e3:.5f}",
                        "bound_ms": f"{t.bound_s * 1e3:.5f}",
                        "x_bound": f"{t.multiple:.3f}",
                    }
                )
        lines = [
            "# Row L2 norms",
            "",
            "Median time per call; CPU bound = a read-only pass over the same array, timed",
            "in alternation with the method on the same clock; GPU bound = half a",
            "device-to-device copy of the array (a copy reads and writes every byte).",
            "",
            "| device | size | method | clock | median ms | bound ms | x bound | extra |",
            "|---|---|---|---|---:|---:|---:|---|",
        ]
        for t in rows:
            extra = ", ".join(f"{k}={v:.4g}" for k, v in t.extra.items())
            lines.append(
                f"| {t.device} | {t.size} | {t.method} | {t.clock} | {t.median_s * 1e3:.4f} | "
                f"{t.bound_s * 1e3:.4f} | {t.multiple:.2f} | {extra} |"
            )
        lines += [
            "",
            "## Targets",
            "",
            "| target | measured | limit | met |",
            "|---|---:|---:|---|",
        ]
        for what, value, limit, met in self.targets():
            lines.append(f"| {what} | {value:.3g} | {limit:g} | {'yes' if met else 'NO'} |")
        (directory / "row_norms.md").write_text("\n".join(lines) + "\n")
        self._chart(rows, directory / "row_norms.png")

    @staticmethod
    def _chart(rows: list[Timing], path: Path) -> None:
        from mlperf._optional import require

        require("matplotlib", "the row-norm chart")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        groups = sorted({(t.device, t.size) for t in rows})
        fig = Figure(figsize=(7, 2.2 + 2.6 * len(groups)))
        FigureCanvasAgg(fig)
        for k, (device, size) in enumerate(groups):
            ax = fig.add_subplot(len(groups), 1, k + 1)
            group = [t for t in rows if (t.device, t.size) == (device, size)]
            colours = ["tab:orange" if _tutorial(t.method) else "tab:blue" for t in group]
            ax.barh([t.method for t in group], [t.multiple for t in group], color=colours)
            ax.axvline(1.0, color="tab:red", linestyle="--", label="read bound")
            ax.set_xscale("log")
            ax.invert_yaxis()
            ax.set_title(f"row norms, {size} on {device}: time / memory bound (log)")
            ax.set_xlabel("multiple of the read bound (orange: the tutorial's way)")
            ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, dpi=110)


def _tutorial(method: str) -> bool:
    from mlperf.compute import METHODS

    return method == "tutorial_parallel" or (method in METHODS and METHODS[method].tutorial)


@pytest.fixture(scope="session")
def compute_report(mlperf_report_dir: Path) -> Iterator[ComputeReport]:
    """The session's row-norm report, written to ``<report dir>/compute`` at the end."""
    report = ComputeReport()
    yield report
    report.write(mlperf_report_dir / "compute")


@pytest.fixture(scope="session")
def matrix_400mb() -> np.ndarray:
    """500,000 x 100 standard-normal float64: 400 MB, well past the 32 MB L3 cache."""
    from mlperf.data import make_matrix

    return make_matrix(500_000, 100)

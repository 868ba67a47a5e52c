"""The report's interactive charts: BokehJS, fed with one JSON spec per chart.

Bokeh ships its JavaScript inside the Python wheel, so the page needs no network:
``bokeh.min.js`` and ``bokeh-api.min.js`` (1.4 MB together) are copied once into
``reports/_mlperf/js/`` and loaded by relative path, or inlined with
``--self-contained``.  The charts are built in the browser by
``mlperf/report/static/charts.js`` from the specs this module writes: building 40
charts through Bokeh's Python models took 5.9 s on the 2-core VM (2026-12-05), the
specs take milliseconds, and ``import bokeh`` (1.3 s) is never needed.
"""

from __future__ import annotations

import html
import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlperf._optional import MissingDependency, install_hint

if TYPE_CHECKING:
    from mlperf.report.history import Point, Series
    from mlperf.report.steps import Fit

__all__ = ["charts_block", "lines_spec", "scripts", "trend_spec", "unit_of"]

_BOKEH_FILES = ("bokeh.min.js", "bokeh-api.min.js")
_CHARTS_JS = Path(__file__).with_name("static") / "charts.js"


def _bokeh_js_dir() -> Path:
    spec = importlib.util.find_spec("bokeh")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        js = Path(folder) / "server" / "static" / "js"
        if all((js / name).is_file() for name in _BOKEH_FILES):
            return js
    raise MissingDependency(
        "mlperf needs 'bokeh' for the report's interactive charts (its JavaScript ships in the "
        f"wheel) but it is not installed; install it with: {install_hint('bokeh')}"
    )


def scripts(own: Path, page_dir: Path, embed: bool) -> str:
    """The ``<script>`` tags that load BokehJS and the chart builder's prerequisites.

    Copies the files into ``own/js`` (when they differ) and refers to them relative to
    *page_dir*; with *embed*, inlines them instead.
    """
    sources = [_bokeh_js_dir() / name for name in _BOKEH_FILES]
    if embed:
        return "".join(f"<script>{p.read_text(encoding='utf-8')}</script>" for p in sources)
    target = own / "js"
    target.mkdir(parents=True, exist_ok=True)
    tags = []
    for src in sources:
        dst = target / src.name
        if not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
        rel = Path(os.path.relpath(dst, page_dir)).as_posix()
        tags.append(f"<script src='{html.escape(rel)}'></script>")
    return "".join(tags)


def charts_block(specs: list[dict[str, Any]]) -> str:
    """The specs as JSON and the builder that turns them into charts (put it last in the body)."""
    data = json.dumps(specs, separators=(",", ":")).replace("</", "<\\/")
    builder = _CHARTS_JS.read_text(encoding="utf-8")
    return (
        f"<script type='application/json' id='mlperf-charts'>{data}</script>"
        f"<script>{builder}</script>"
    )


def unit_of(seconds: float) -> tuple[str, float]:
    """The unit that shows *seconds* with 1-3 digits before the point, and its scale."""
    for unit, scale in (("s", 1.0), ("ms", 1e3), ("us", 1e6)):
        if seconds * scale >= 1:
            return unit, scale
    return "ns", 1e9


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _spread(p: Point, scale: float, unit: str) -> str:
    text = f"IQR of rounds {_fmt(p.low * scale)}-{_fmt(p.high * scale)} {unit}"
    if len(p.runs) > 1:
        text += f"; runs {_fmt(min(p.runs) * scale)}-{_fmt(max(p.runs) * scale)} {unit}"
    return text


def trend_spec(
    series: Series,
    fit: Fit,
    n_commits: int,
    ticks: list[str],
    *,
    target: str,
    title: str,
    threshold: float | None,
    height: int = 300,
    small: bool = False,
) -> dict[str, Any]:
    """A benchmark's history as a chart: median per commit, spread band, runs, fitted steps.

    The y-axis starts at zero; *threshold* (e.g. 0.03) draws the band within which the
    newest level would count as unchanged.
    """
    pts = series.points
    unit, scale = unit_of(statistics_median([p.value for p in pts]))
    steps = [{"x": pts[s.index].index - 0.5, "up": s.ratio > 1} for s in fit.steps]
    newest = fit.levels[-1] * scale if fit.levels else None
    band = (
        [newest / (1 + threshold), newest * (1 + threshold)]
        if threshold and newest is not None
        else None
    )
    return {
        "kind": "trend",
        "target": target,
        "title": title,
        "unit": f"{series.metric} time per call ({unit})",
        "height": height,
        "small": small,
        "n": n_commits,
        "ticks": ticks,
        "band": band,
        "points": {
            "x": [p.index for p in pts],
            "value": [p.value * scale for p in pts],
            "low": [p.low * scale for p in pts],
            "high": [p.high * scale for p in pts],
            "commit": [p.commit["sha"][:10] for p in pts],
            "date": [(p.commit["date"] or p.created[0])[:16] for p in pts],
            "subject": [(p.commit["subject"] or "")[:80] for p in pts],
            "label": [f"{_fmt(p.value * scale)} {unit}" for p in pts],
            "spread": [_spread(p, scale, unit) for p in pts],
            "runs": [len(p.runs) for p in pts],
        },
        "runs": {
            "x": [p.index for p in pts for _ in p.runs],
            "y": [r * scale for p in pts for r in p.runs],
        },
        "fit": {"x": [p.index for p in pts], "y": [v * scale for v in fit.levels]},
        "steps": steps,
    }


def lines_spec(
    series: list[tuple[str, str, list[Point], list[float | None]]],
    n_commits: int,
    ticks: list[str],
    *,
    target: str,
    title: str,
    unit: str,
    fmt: str,
    height: int = 260,
) -> dict[str, Any]:
    """Several lines over commits (both clocks, peak memory): (name, colour, points, values)."""
    out = []
    for name, colour, pts, values in series:
        kept = [(p, v) for p, v in zip(pts, values, strict=True) if v is not None]
        if not kept:
            continue
        out.append(
            {
                "name": name,
                "colour": colour,
                "x": [p.index for p, _ in kept],
                "y": [v for _, v in kept],
                "commit": [p.commit["sha"][:10] for p, _ in kept],
                "label": [f"{v:{fmt}} {unit}" for _, v in kept],
            }
        )
    return {
        "kind": "lines",
        "target": target,
        "title": title,
        "unit": unit,
        "height": height,
        "small": False,
        "n": n_commits,
        "ticks": ticks,
        "series": out,
    }


def statistics_median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return 0.0 if not n else s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2

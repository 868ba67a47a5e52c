"""The history in the report: the steps found, small multiples per suite, one page per benchmark."""

from __future__ import annotations

import hashlib
import html
import re
from typing import TYPE_CHECKING, Any

from mlperf.report.charts import short_id
from mlperf.report.interactive import charts_block, lines_spec, scripts, trend_spec, unit_of
from mlperf.report.latest import fmt_bytes
from mlperf.report.page import CSS, table

if TYPE_CHECKING:
    from pathlib import Path

    from mlperf.report.trend import Analysis, FoundStep

__all__ = ["PAGES_DIR", "history_section", "slug", "steps_section", "write_benchmark_pages"]

#: the folder of the report directory with one page per benchmark
PAGES_DIR = "benchmarks"


def slug(bid: str) -> str:
    """A file name for benchmark *bid*: readable, and unique through a short hash."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", short_id(bid)).strip("_")[:80]
    return f"{readable}-{hashlib.sha1(bid.encode()).hexdigest()[:6]}"


def _link(bid: str, prefix: str) -> str:
    return f"<a href='{prefix}{slug(bid)}.html'>{html.escape(short_id(bid))}</a>"


def _ticks(analysis: Analysis) -> list[str]:
    return [c["sha"][:7] for c in analysis.commits]


def _step_rows(steps: list[FoundStep], prefix: str | None) -> str:
    """The steps as a table; with a *prefix*, each names and links its benchmark."""
    rows = []
    for f in steps:
        date = (f.after["date"] or "")[:10]
        cells = [f"<td><code>{html.escape(f.commit_range())}</code> {html.escape(date)}</td>"]
        if prefix is not None:
            cells.append(f"<td>{_link(f.benchmark, prefix)}</td>")
        cells.append(
            f"<td class='{'bad' if f.step.ratio > 1 else 'good'}'>{html.escape(f.text())}</td>"
        )
        cells.append(f"<td>{'in force' if f.step.in_force else 'gone'}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = ["commits", *(["benchmark"] if prefix is not None else []), "change (95% CI)", "now"]
    head_html = "".join(f"<th>{h}</th>" for h in head)
    return (
        f"<table class='steps'><thead><tr>{head_html}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def steps_section(analysis: Analysis, prefix: str) -> str:
    """The report's first section: every step found, newest first, linked to its benchmark."""
    out = ["<h2 id='steps'>Steps in the history</h2>"]
    if not analysis.commits:
        out.append(
            "<p>No history of committed runs yet: every <code>pytest --benchmark-enable</code> "
            "on a commit adds a point.</p>"
        )
        return "".join(out)
    n = len(analysis.commits)
    out.append(
        f"<p>{len(analysis.steps)} step(s) in {len(analysis.series)} benchmark(s) over the last "
        f"{n} commit(s) (<code>{html.escape(analysis.commits[0]['sha'][:7])}</code> to "
        f"<code>{html.escape(analysis.commits[-1]['sha'][:7])}</code>), newest first. A step is a "
        "change of level that a penalised step fit finds and a rank test confirms; "
        "<code>a..b</code> is the git range between the last commit before it and the first "
        "after. <code>mlperf history</code> prints the same list.</p>"
    )
    if analysis.uncommitted:
        out.append(
            f"<p class='src'>{analysis.uncommitted} run(s) of an uncommitted tree are not in the "
            "history: they measured no commit.</p>"
        )
    if analysis.bad_lines:
        out.append(
            f"<p class='src'>{analysis.bad_lines} unreadable line(s) in the history file were "
            "skipped.</p>"
        )
    if analysis.steps:
        out.append(_step_rows(analysis.steps, prefix))
    return "".join(out)


def history_section(
    analysis: Analysis, prefix: str, threshold: float
) -> tuple[str, list[dict[str, Any]]]:
    """Small multiples per suite and the list of benchmarks; returns the HTML and chart specs."""
    if not analysis.series:
        return "", []
    specs: list[dict[str, Any]] = []
    parts = [
        "<h2 id='history'>History by commit</h2><p class='src'>Each point is one commit: the "
        "median of its runs' medians, the band the rounds' interquartile range, grey dots the "
        "runs, the dashed red line the fitted levels, the green band the newest level "
        f"&plusmn;{threshold:.0%}. Hover for the commit; click a title for its page.</p>"
    ]
    suites = sorted({s.suite for s in analysis.series.values()})
    n, ticks = len(analysis.commits), _ticks(analysis)
    for suite in suites:
        cells = []
        for bid, s in analysis.series.items():
            if s.suite != suite:
                continue
            target = f"c-{slug(bid)}"
            cells.append(f"<div class='cell'>{_link(bid, prefix)}<div id='{target}'></div></div>")
            specs.append(
                trend_spec(
                    s,
                    analysis.fits[bid],
                    n,
                    ticks,
                    target=target,
                    title="",
                    threshold=threshold,
                    height=170,
                    small=True,
                )
            )
        parts.append(f"<h3>{html.escape(suite)}</h3><div class='grid'>{''.join(cells)}</div>")
    return "".join(parts), specs


def _page(title: str, body: str, head_scripts: str, specs: list[dict[str, Any]]) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>{head_scripts}</head>"
        f"<body>{body}{charts_block(specs)}</body></html>\n"
    )


def write_benchmark_pages(
    analysis: Analysis, folder: Path, own: Path, threshold: float, embed: bool
) -> list[Path]:
    """One page per benchmark in *folder*: its steps and chart, both clocks, peak memory, points."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.html"):  # a benchmark that disappeared must not keep its page
        stale.unlink()
    head = scripts(own, folder, embed)
    n, ticks = len(analysis.commits), _ticks(analysis)
    written = []
    for bid, s in analysis.series.items():
        fit = analysis.fits[bid]
        mine = [f for f in analysis.steps if f.benchmark == bid]
        unit, scale = unit_of(s.points[-1].value)
        specs = [
            trend_spec(
                s, fit, n, ticks, target="trend", title=f"{s.metric} time", threshold=threshold
            ),
            lines_spec(
                [
                    ("cpu", "#1565c0", s.points, [_scaled(p.cpu, scale) for p in s.points]),
                    ("wall", "#ef6c00", s.points, [_scaled(p.wall, scale) for p in s.points]),
                ],
                n,
                ticks,
                target="clocks",
                title="both clocks (median of the runs)",
                unit=unit,
                fmt=".3g",
            ),
        ]
        memory = [p.peak_memory / 2**20 if p.peak_memory is not None else None for p in s.points]
        if any(m is not None for m in memory):
            specs.append(
                lines_spec(
                    [("peak", "#6a1b9a", s.points, memory)],
                    n,
                    ticks,
                    target="memory",
                    title="peak memory",
                    unit="MiB",
                    fmt=".1f",
                )
            )
        rows = [
            [
                p.commit["sha"][:10],
                (p.commit["date"] or p.created[0])[:16],
                (p.commit["subject"] or "")[:60],
                str(len(p.runs)),
                f"{p.value * scale:.4g} {unit}",
                fmt_bytes(p.peak_memory),
            ]
            for p in reversed(s.points)
        ]
        body = (
            "<p><a href='../index.html'>&larr; the report</a></p>"
            f"<h1><code>{html.escape(bid)}</code></h1>"
            f"<p>suite {html.escape(s.suite)}, gated on {html.escape(s.metric)} time; "
            f"{len(s.points)} commit(s); run-to-run noise of a median about "
            f"&plusmn;{fit.noise:.1%}.</p>"
            "<h2>Steps</h2>"
            + (_step_rows(mine, None) if mine else "<p>No step found.</p>")
            + "<div id='trend'></div><div id='clocks'></div><div id='memory'></div>"
            "<h2>Commits, newest first</h2>"
            + table(["commit", "date", "subject", "runs", "median", "peak memory"], rows)
        )
        path = folder / f"{slug(bid)}.html"
        path.write_text(_page(short_id(bid), body, head, specs), encoding="utf-8")
        written.append(path)
    return written


def _scaled(x: float | None, scale: float) -> float | None:
    return None if x is None else x * scale

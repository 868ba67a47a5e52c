"""``mlperf report``: the latest run, the stored baselines and the history as one static page.

Writes ``reports/index.html`` plus matplotlib PNGs under ``reports/_mlperf/``: the
ratio of every benchmark to its baseline with a bootstrap interval, and per suite
a trend of the medians over the machine's history with regressions marked.  Below
them, every table and chart the suites left under ``reports/<family>/`` (the I/O
format table, the compute-method chart, the engines-vs-rows plot, the Ray Tune
scatter plots, the gate's error rates ...) under one heading per family.  The
page needs no server and no network: images are relative paths (or ``data:``
URIs with ``--self-contained``), styles are inline.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import math
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["ReportError", "add_arguments", "build_report", "load_history", "load_run", "run"]

OWN_DIR = "_mlperf"  # our PNGs; not a suite family
_SKIP_DIRS = {"history", OWN_DIR}
_MAX_CSV_ROWS = 200


class ReportError(Exception):
    """The inputs cannot make a report; the message says which file and what to do."""


def load_run(reports: Path) -> dict[str, Any] | None:
    """``reports/latest.json`` (None when absent); refuses another kind or schema version."""
    path = reports / "latest.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(
            f"{str(path)!r} is unreadable ({exc}); re-create it with `make bench`"
        ) from exc
    if not isinstance(data, dict) or data.get("kind") != "mlperf-run":
        raise ReportError(
            f"{str(path)!r} is not an mlperf run file (kind {data.get('kind')!r}); re-run `make bench`"
        )
    if data.get("schema_version") != 1:
        raise ReportError(
            f"{str(path)!r} has schema_version {data.get('schema_version')!r}; this mlperf reads 1; "
            "re-run `make bench` with this version (or upgrade mlperf to read a newer file)"
        )
    return data


def load_history(reports: Path, machine: str, limit: int = 100) -> tuple[list[dict[str, Any]], int]:
    """The last *limit* runs of ``reports/history/<machine>.jsonl`` and the number of unreadable lines."""
    path = reports / "history" / f"{machine}.jsonl"
    runs, bad = [], 0
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # a run killed mid-write leaves a torn last line; the rest still counts
                continue
            if isinstance(entry, dict) and entry.get("kind") == "mlperf-run":
                runs.append(entry)
            else:
                bad += 1
    return runs[-limit:], bad


def _ratio_rows(run: dict[str, Any], stored: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    from mlperf.stats import bootstrap_ratio_ci

    rows = []
    for rec in run.get("benchmarks", []):
        ref = stored.get(rec["id"])
        metric = rec.get("metric", "cpu")
        new = (rec.get(metric) or {}).get("samples") or []
        old = ((ref or {}).get(metric) or {}).get("samples") or []
        if not new or not old:
            continue
        ratio = float(_median(new) / _median(old)) if _median(old) > 0 else math.inf
        lo, hi = bootstrap_ratio_ci(old, new) if min(old) > 0 else (ratio, ratio)
        rows.append({"id": rec["id"], "ratio": ratio, "lo": lo, "hi": hi, "limit": 1 + rec.get("max_regression", 0.25),
                     "verdict": (rec.get("verdict") or {}).get("time", "")})  # fmt: skip
    return rows


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _pyplot() -> Any:
    from mlperf._optional import require

    matplotlib = require("matplotlib", "the report's charts")
    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    return require("matplotlib.pyplot", "the report's charts")


def _pyplot_ticker() -> Any:
    from mlperf._optional import require

    return require("matplotlib.ticker", "the report's charts")


_COLOURS = {"REGRESSION": "#c62828", "slower": "#ef6c00", "faster": "#2e7d32", "same": "#1565c0"}


def plot_ratios(rows: list[dict[str, Any]], path: Path) -> Path:
    """Forest plot: each benchmark's median ratio to its baseline with the 95 % interval."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.32 * len(rows)))
    for y, r in enumerate(rows):
        colour = _COLOURS.get(r["verdict"], "#555555")
        ax.plot([r["lo"], r["hi"]], [y, y], color=colour, lw=2)
        ax.plot([r["ratio"]], [y], "o", color=colour)
        ax.plot([r["limit"]], [y], "|", color="#c62828", ms=10)
    ax.axvline(1.0, color="#333333", lw=0.8)
    ax.set_yticks(range(len(rows)), [_short(r["id"]) for r in rows], fontsize=7)
    ax.set_xscale("log")
    ticker = _pyplot_ticker()
    for axis_fmt in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_fmt(ticker.FuncFormatter(lambda v, _pos: f"{v:.2f}x"))
    ax.set_xlabel(
        "median ratio to baseline (log scale); bar = 95 % bootstrap interval, red tick = gate limit"
    )
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_trends(
    history: list[dict[str, Any]], stored: dict[str, dict[str, Any]], suite: str, path: Path
) -> Path | None:
    """Small multiples: one benchmark's median per run, regressions as red crosses, baseline dashed."""
    series: dict[str, list[tuple[int, float, bool]]] = {}
    for index, run in enumerate(history):
        for rec in run.get("benchmarks", []):
            if rec.get("suite") != suite:
                continue
            med = (rec.get(rec.get("metric", "cpu")) or {}).get("median")
            if med is not None:
                bad = (rec.get("verdict") or {}).get("time") == "REGRESSION"
                series.setdefault(rec["id"], []).append((index, med * 1e3, bad))
    if not series:
        return None
    plt = _pyplot()
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
        ref = stored.get(bid, {})
        ref_med = (ref.get(ref.get("metric", "cpu")) or {}).get("median")
        if ref_med is not None:
            ax.axhline(ref_med * 1e3, color="#777777", ls="--", lw=0.8)
        ax.set_title(_short(bid), fontsize=7)
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


def _short(bid: str) -> str:
    path, _, name = bid.partition("::")
    return f"{Path(path).stem.removeprefix('test_')}::{name}" if name else bid


# ------------------------------------------------------------------- HTML


def _md_inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def markdown_to_html(text: str) -> str:
    """The markdown the suites write: headings, pipe tables, bullet lists, paragraphs."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            body = [r for r in block[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r if c)]
            out.append(_table(block[0], body, inline=True))
            continue
        if m := re.match(r"(#{1,6})\s+(.*)", line):
            level = min(6, len(m.group(1)) + 2)  # below the page's own headings
            out.append(f"<h{level}>{_md_inline(m.group(2))}</h{level}>")
        elif line.startswith(("- ", "* ")):
            items = []
            while i < len(lines) and lines[i].startswith(("- ", "* ")):
                items.append(f"<li>{_md_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line:
            out.append(f"<p>{_md_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _table(header: list[str], rows: list[list[str]], inline: bool = False) -> str:
    cell = _md_inline if inline else html.escape
    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='{_cls(c)}'>{cell(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cls(cell: str) -> str:
    return "bad" if "REGRESSION" in cell else ""


def _img(path: Path, page_dir: Path, embed: bool, caption: str) -> str:
    if embed:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        src = Path(os.path.relpath(path, page_dir)).as_posix()
    return (f"<figure><img src='{html.escape(src)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")  # fmt: skip


def _family_section(family: Path, page_dir: Path, embed: bool) -> str:
    parts = [
        f"<section class='family'><h2 id='family-{html.escape(family.name)}'>{html.escape(family.name)}</h2>"
    ]
    files = sorted(p for p in family.rglob("*") if p.is_file())
    for path in files:
        rel = path.relative_to(family).as_posix()
        if path.suffix.lower() == ".png":
            parts.append(_img(path, page_dir, embed, rel))
        elif path.suffix.lower() == ".md":
            parts.append(
                f"<div class='md'><p class='src'>{html.escape(rel)}</p>{markdown_to_html(path.read_text(encoding='utf-8'))}</div>"
            )
        elif path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if rows:
                more = len(rows) - 1 - _MAX_CSV_ROWS
                note = (
                    f"<p class='src'>{html.escape(rel)}"
                    + (f" (first {_MAX_CSV_ROWS} of {len(rows) - 1} rows)" if more > 0 else "")
                    + "</p>"
                )
                parts.append(note + _table(rows[0], rows[1 : _MAX_CSV_ROWS + 1]))
    if len(parts) == 1:
        return ""
    return "\n".join(parts) + "</section>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}th{background:#f0f0f0}
td.bad{background:#ffebee;color:#b71c1c;font-weight:bold}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:12px;color:#555}
img{max-width:100%;border:1px solid #ddd}.src{font-size:12px;color:#777;margin:.2em 0}
#img-warning{background:#fff3e0;padding:.5em;display:none}
"""
# Counts the images that really decoded; the browser test reads the counts, and a
# reader who copied index.html without its PNGs is told what to do.
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
  if (ok < imgs.length) {
    var w = document.getElementById('img-warning');
    w.textContent = (imgs.length - ok) + ' image(s) did not load: keep index.html inside its reports/ folder, '
      + 'or rebuild it with `mlperf report --self-contained`.';
    w.style.display = 'block';
  }
});
"""


def build_report(
    reports: Path | str = "reports",
    baselines: Path | str = "baselines",
    *,
    output: Path | str | None = None,
    machine: str | None = None,
    history_limit: int = 100,
    self_contained: bool = False,
) -> Path:
    """Write the HTML report and its PNGs; return the page's path.

    Parameters
    ----------
    reports:
        The report directory: ``latest.json``, ``history/``, and the suites' ``<family>/`` folders.
    baselines:
        The stored baselines (``<baselines>/<machine-id>/<suite>.json``).
    output:
        Page to write (default ``<reports>/index.html``).
    machine:
        Machine whose baselines and history to show (default: the latest run's, else this one).
    history_limit:
        How many of the most recent runs the trend plots show.
    self_contained:
        Inline every image as a ``data:`` URI, so the page can travel alone.

    Raises
    ------
    ReportError
        When ``latest.json`` or a baseline file is unreadable or of another schema.
    """
    from mlperf.baselines import BaselineError, load_machine, machine_id
    from mlperf.plugin import verdict_rows

    reports, baselines = Path(reports), Path(baselines)
    page = Path(output) if output else reports / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    run = load_run(reports)
    machine = machine or (run or {}).get("machine_id") or machine_id()
    try:
        stored = load_machine(baselines, machine)
    except BaselineError as exc:
        raise ReportError(str(exc)) from exc
    history, bad = load_history(reports, machine, history_limit)
    own = reports / OWN_DIR
    own.mkdir(parents=True, exist_ok=True)
    for stale in own.glob("*.png"):  # a suite that disappeared must not keep its old chart
        stale.unlink()

    body = [
        f"<h1>mlperf report: <code>{html.escape(machine)}</code></h1>",
        "<p id='img-warning'></p>",
    ]
    if run is None:
        body.append(
            "<p>No benchmark run yet in this report directory: run <code>make bench</code>.</p>"
        )
    else:
        env = run.get("environment") or {}
        pkgs = ", ".join(f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()))
        gate = run.get("gate") or {}
        status = (f"<b class='bad'>FAILED: {len(gate.get('regressions', []))} regression(s)</b>"
                  if gate.get("failed") else "passed")  # fmt: skip
        body.append(
            f"<p>Latest run {html.escape(str(run.get('created')))}, commit <code>{html.escape(str(run.get('commit')))}</code>, "
            f"Python {html.escape(str(env.get('python', '?')))}; gate {status}.</p><p class='src'>{html.escape(pkgs)}</p>"
        )
        rows = verdict_rows(run)
        body.append(
            "<h2 id='latest'>Latest run against the stored baselines</h2>"
            + _table(rows[0], rows[1:])
        )
        ratios = _ratio_rows(run, stored)
        if ratios:
            body.append("<h2 id='ratios'>Ratio to baseline</h2>")
            body.append(_img(plot_ratios(ratios, own / "ratio_to_baseline.png"), page.parent, self_contained,
                             "median ratio of this run to the stored baseline, 95 % bootstrap interval"))  # fmt: skip
        elif stored:
            body.append(
                "<p>No benchmark of this run has a stored baseline with samples to compare.</p>"
            )
        else:
            body.append(f"<p>No baselines for <code>{html.escape(machine)}</code> in {html.escape(str(baselines))}: "
                        "record them with <code>make baseline</code>.</p>")  # fmt: skip
    if history:
        body.append(f"<h2 id='trends'>History: the last {len(history)} run(s)</h2>")
        if bad:
            body.append(
                f"<p class='src'>{bad} unreadable line(s) in the history file were skipped.</p>"
            )
        suites = sorted({rec.get("suite", "?") for r in history for rec in r.get("benchmarks", [])})
        for suite in suites:
            png = plot_trends(
                history, stored, suite, own / f"trend_{re.sub(r'[^A-Za-z0-9_-]', '_', suite)}.png"
            )
            if png is not None:
                body.append(f"<h3>{html.escape(suite)}</h3>" + _img(png, page.parent, self_contained,
                                                                    f"{suite}: median per run; red x = REGRESSION; dashed = baseline"))  # fmt: skip
    families = [
        p
        for p in sorted(reports.iterdir())
        if p.is_dir() and p.name not in _SKIP_DIRS and not p.name.startswith(".")
    ]
    family_html = [
        s for s in (_family_section(f, page.parent, self_contained) for f in families) if s
    ]
    if family_html:
        body.append("<h2 id='families'>Suites</h2>" + "".join(family_html))
    page.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>mlperf report: {html.escape(machine)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}<script>{_SCRIPT}</script></body></html>\n",
        encoding="utf-8",
    )
    return page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlperf report``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--reports",
        default="reports",
        metavar="DIR",
        help="report directory with latest.json, history/ and the suites' folders (default: reports)",
    )
    parser.add_argument(
        "--baselines",
        default="baselines",
        metavar="DIR",
        help="stored baselines (default: baselines)",
    )
    parser.add_argument(
        "--output",
        default=None,
        metavar="PATH",
        help="page to write (default: <reports>/index.html)",
    )
    parser.add_argument("--machine", default=None, help="machine id (default: the latest run's)")
    parser.add_argument(
        "--history",
        type=int,
        default=100,
        metavar="N",
        help="runs shown in the trends (default: 100)",
    )
    parser.add_argument("--self-contained", action="store_true", help="inline the images as data: URIs")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``mlperf report``: 0 when the page was written, 2 when the inputs are unusable."""
    if args.history < 1:
        print(f"mlperf report: --history must be at least 1; got {args.history!r}", file=sys.stderr)
        return 2
    try:
        page = build_report(args.reports, args.baselines, output=args.output, machine=args.machine,
                            history_limit=args.history, self_contained=args.self_contained)  # fmt: skip
    except ReportError as exc:
        print(f"mlperf report: {exc}", file=sys.stderr)
        return 2
    print(f"mlperf report: wrote {page}")
    return 0

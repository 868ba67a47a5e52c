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
import html
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlperf.records import (
    DEFAULT_BASELINES_DIR,
    DEFAULT_MAX_REGRESSION,
    DEFAULT_METRIC,
    DEFAULT_REPORTS_DIR,
    RUN_KIND,
    RUN_SCHEMA_VERSION,
    samples_of,
)
from mlperf.report.charts import RatioRow, plot_ratios, plot_trends
from mlperf.report.page import CSS, SCRIPT, family_section, img, markdown_to_html, table

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlperf.records import BaselineEntry, RunRecord

__all__ = [
    "ReportError",
    "add_arguments",
    "build_report",
    "load_history",
    "load_run",
    "markdown_to_html",
    "run",
]

#: runs of the machine's history that the trend plots show
HISTORY_LIMIT = 100
OWN_DIR = "_mlperf"  # our PNGs; not a suite family
_SKIP_DIRS = {"history", OWN_DIR}


class ReportError(Exception):
    """The inputs cannot make a report; the message says which file and what to do."""


def load_run(reports: Path) -> RunRecord | None:
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
    if not isinstance(data, dict) or data.get("kind") != RUN_KIND:
        raise ReportError(
            f"{str(path)!r} is not an mlperf run file (kind {data.get('kind')!r}); re-run `make "
            "bench`"
        )
    if data.get("schema_version") != RUN_SCHEMA_VERSION:
        raise ReportError(
            f"{str(path)!r} has schema_version {data.get('schema_version')!r}; this mlperf reads "
            f"{RUN_SCHEMA_VERSION}; re-run `make bench` with this version (or upgrade mlperf to "
            "read a newer file)"
        )
    return cast("RunRecord", data)


def load_history(
    reports: Path, machine: str, limit: int = HISTORY_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """The last *limit* runs in ``reports/history/<machine>.jsonl``, and the bad lines' count."""
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
            if isinstance(entry, dict) and entry.get("kind") == RUN_KIND:
                runs.append(entry)
            else:
                bad += 1
    return runs[-limit:], bad


def _ratio_rows(run: RunRecord, stored: Mapping[str, BaselineEntry]) -> list[RatioRow]:
    from mlperf.stats import bootstrap_ratio_ci

    rows: list[RatioRow] = []
    for rec in run.get("benchmarks", []):
        ref = stored.get(rec["id"])
        metric = rec.get("metric", DEFAULT_METRIC)
        new = samples_of(rec.get(metric))
        old = samples_of(ref.get(metric) if ref else None)
        if not new or not old:
            continue
        ratio = float(_median(new) / _median(old)) if _median(old) > 0 else math.inf
        lo, hi = bootstrap_ratio_ci(old, new) if min(old) > 0 else (ratio, ratio)
        verdict = rec.get("verdict")
        rows.append(
            {
                "id": rec["id"],
                "ratio": ratio,
                "lo": lo,
                "hi": hi,
                "limit": 1 + rec.get("max_regression", DEFAULT_MAX_REGRESSION),
                "verdict": verdict.get("time", "") if verdict else "",
            }
        )
    return rows


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def build_report(
    reports: Path | str = DEFAULT_REPORTS_DIR,
    baselines: Path | str = DEFAULT_BASELINES_DIR,
    *,
    output: Path | str | None = None,
    machine: str | None = None,
    history_limit: int = HISTORY_LIMIT,
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
    from mlperf.report.latest import verdict_rows

    reports, baselines = Path(reports), Path(baselines)
    page = Path(output) if output else reports / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    run = load_run(reports)
    machine = machine or (run.get("machine_id") if run else None) or machine_id()
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
        status = (
            f"<b class='bad'>FAILED: {len(gate.get('regressions', []))} regression(s)</b>"
            if gate.get("failed")
            else "passed"
        )
        body.append(
            f"<p>Latest run {html.escape(str(run.get('created')))}, commit "
            f"<code>{html.escape(str(run.get('commit')))}</code>, "
            f"Python {html.escape(str(env.get('python', '?')))}; gate {status}.</p><p "
            f"class='src'>{html.escape(pkgs)}</p>"
        )
        rows = verdict_rows(run)
        body.append(
            "<h2 id='latest'>Latest run against the stored baselines</h2>"
            + table(rows[0], rows[1:])
        )
        ratios = _ratio_rows(run, stored)
        if ratios:
            body.append("<h2 id='ratios'>Ratio to baseline</h2>")
            body.append(
                img(
                    plot_ratios(ratios, own / "ratio_to_baseline.png"),
                    page.parent,
                    self_contained,
                    "median ratio of this run to the stored baseline, 95 % bootstrap interval",
                )
            )
        elif stored:
            body.append(
                "<p>No benchmark of this run has a stored baseline with samples to compare.</p>"
            )
        else:
            body.append(
                f"<p>No baselines for <code>{html.escape(machine)}</code> in "
                f"{html.escape(str(baselines))}: "
                "record them with <code>make baseline</code>.</p>"
            )
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
                body.append(
                    f"<h3>{html.escape(suite)}</h3>"
                    + img(
                        png,
                        page.parent,
                        self_contained,
                        f"{suite}: median per run; red x = REGRESSION; dashed = baseline",
                    )
                )
    families = [
        p
        for p in sorted(reports.iterdir())
        if p.is_dir() and p.name not in _SKIP_DIRS and not p.name.startswith(".")
    ]
    family_html = [
        s for s in (family_section(f, page.parent, self_contained) for f in families) if s
    ]
    if family_html:
        body.append("<h2 id='families'>Suites</h2>" + "".join(family_html))
    page.write_text(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>mlperf report: {html.escape(machine)}</title><style>{CSS}</style></head>"
        f"<body>{''.join(body)}<script>{SCRIPT}</script></body></html>\n",
        encoding="utf-8",
    )
    return page


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlperf report``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--reports",
        default=DEFAULT_REPORTS_DIR,
        metavar="DIR",
        help="report directory with latest.json, history/ and the suites' folders "
        f"(default: {DEFAULT_REPORTS_DIR})",
    )
    parser.add_argument(
        "--baselines",
        default=DEFAULT_BASELINES_DIR,
        metavar="DIR",
        help=f"stored baselines (default: {DEFAULT_BASELINES_DIR})",
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
        default=HISTORY_LIMIT,
        metavar="N",
        help=f"runs shown in the trends (default: {HISTORY_LIMIT})",
    )
    parser.add_argument(
        "--self-contained", action="store_true", help="inline the images as data: URIs"
    )


def run(args: argparse.Namespace) -> int:
    """``mlperf report``: 0 when the page was written, 2 when the inputs are unusable."""
    if args.history < 1:
        print(f"mlperf report: --history must be at least 1; got {args.history!r}", file=sys.stderr)
        return 2
    try:
        page = build_report(
            args.reports,
            args.baselines,
            output=args.output,
            machine=args.machine,
            history_limit=args.history,
            self_contained=args.self_contained,
        )
    except ReportError as exc:
        print(f"mlperf report: {exc}", file=sys.stderr)
        return 2
    print(f"mlperf report: wrote {page}")
    return 0

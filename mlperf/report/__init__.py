"""``mlperf report``: the history by commit, the latest A/B and run, and the suites' tables.

Writes ``reports/index.html`` and one page per benchmark under ``reports/benchmarks/``.
The summary opens with the steps found in the machine's history (newest first,
see :mod:`mlperf.report.trend`), then the latest ``mlperf ab`` result
(``reports/ab/latest.json``), the latest run against the stored baselines with
the ratio chart, interactive small multiples of every benchmark's history by
commit, and every table and chart the suites left under ``reports/<family>/``
(the I/O format table, the compute-method chart, the gate's error rates ...).
The pages need no server and no network: BokehJS is copied into
``reports/_mlperf/js/`` (or inlined with ``--self-contained``), images are
relative paths (or ``data:`` URIs), styles are inline.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

from mlperf._args import One, number
from mlperf.baselines import RECORD_COMMAND
from mlperf.records import (
    DEFAULT_AB_THRESHOLD,
    DEFAULT_BASELINES_DIR,
    DEFAULT_MAX_REGRESSION,
    DEFAULT_METRIC,
    DEFAULT_REPORTS_DIR,
    RUN_KIND,
    RUN_SCHEMA_VERSION,
    samples_of,
)
from mlperf.report.ab import AB_DIR, ab_section
from mlperf.report.benchmarks import (
    PAGES_DIR,
    history_section,
    steps_section,
    write_benchmark_pages,
)
from mlperf.report.charts import RatioRow, plot_ratios
from mlperf.report.history import add_source_arguments, read_history
from mlperf.report.interactive import charts_block, scripts
from mlperf.report.page import CSS, SCRIPT, family_section, img, markdown_to_html, table
from mlperf.report.trend import analyse

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlperf.records import BaselineEntry, RunRecord

__all__ = [
    "ReportError",
    "add_arguments",
    "build_report",
    "load_run",
    "markdown_to_html",
    "read_history",
    "run",
]

#: commits of the machine's history that the report shows and analyses
HISTORY_LIMIT = 100
OWN_DIR = "_mlperf"  # our PNGs and scripts; not a suite family
_SKIP_DIRS = {"history", OWN_DIR, AB_DIR, PAGES_DIR}


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
            f"{str(path)!r} is unreadable ({exc}); re-create it with `pytest --benchmark-enable`"
        ) from exc
    if not isinstance(data, dict) or data.get("kind") != RUN_KIND:
        raise ReportError(
            f"{str(path)!r} is not an mlperf run file (kind {data.get('kind')!r}); re-run `make "
            "bench`"
        )
    if data.get("schema_version") != RUN_SCHEMA_VERSION:
        raise ReportError(
            f"{str(path)!r} has schema_version {data.get('schema_version')!r}; this mlperf reads "
            f"{RUN_SCHEMA_VERSION}; re-run `pytest --benchmark-enable` with this version "
            "(or upgrade mlperf to read a newer file)"
        )
    return cast("RunRecord", data)


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
    threshold: float = DEFAULT_AB_THRESHOLD,
) -> Path:
    """Write the HTML report, its benchmark pages and its PNGs; return the summary page's path.

    Parameters
    ----------
    reports:
        The report directory: ``latest.json``, ``history/``, ``ab/`` and the suites' folders.
    baselines:
        The stored baselines (``<baselines>/<machine-id>/<suite>.json``).
    output:
        Summary page to write (default ``<reports>/index.html``); the benchmark pages go to
        ``benchmarks/`` beside it.
    machine:
        Machine whose baselines and history to show (default: the latest run's, else this one).
    history_limit:
        How many of the newest commits the history shows and analyses.
    self_contained:
        Inline every image as a ``data:`` URI and the charts' JavaScript, so a page can travel
        alone.
    threshold:
        The relative change the charts' band around the newest level shows (``mlperf ab``'s).

    Raises
    ------
    ReportError
        When ``latest.json`` or a baseline file is unreadable or of another schema.
    """
    from mlperf.baselines import BaselineError, load_machine, machine_id

    reports, baselines = Path(reports), Path(baselines)
    page = Path(output) if output else reports / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    run = load_run(reports)
    machine = machine or (run.get("machine_id") if run else None) or machine_id()
    try:
        stored = load_machine(baselines, machine)
    except BaselineError as exc:
        raise ReportError(str(exc)) from exc
    own = reports / OWN_DIR
    own.mkdir(parents=True, exist_ok=True)
    for stale in own.glob("*.png"):  # a suite that disappeared must not keep its old chart
        stale.unlink()
    analysis = analyse(reports, machine, history_limit)
    pages = page.parent / PAGES_DIR
    write_benchmark_pages(analysis, pages, own, threshold, self_contained)
    prefix = f"{PAGES_DIR}/"
    history_html, specs = history_section(analysis, prefix, threshold)
    body = [
        f"<h1>mlperf report: <code>{html.escape(machine)}</code></h1>",
        "<p id='img-warning'></p>",
        steps_section(analysis, prefix),
        ab_section(reports),
        _latest_section(run, stored, machine, baselines, own, page.parent, self_contained),
        history_html,
    ]
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
        f"<title>mlperf report: {html.escape(machine)}</title><style>{CSS}</style>"
        f"{scripts(own, page.parent, self_contained)}</head>"
        f"<body>{''.join(body)}<script>{SCRIPT}</script>{charts_block(specs)}</body></html>\n",
        encoding="utf-8",
    )
    return page


def _latest_section(
    run: RunRecord | None,
    stored: Mapping[str, BaselineEntry],
    machine: str,
    baselines: Path,
    own: Path,
    page_dir: Path,
    embed: bool,
) -> str:
    from mlperf.report.latest import verdict_rows

    if run is None:
        return (
            "<p>No benchmark run yet in this report directory: run "
            "<code>pytest --benchmark-enable</code>.</p>"
        )
    env = run.get("environment") or {}
    pkgs = ", ".join(f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()))
    gate = run.get("gate") or {}
    status = (
        f"<b class='bad'>FAILED: {len(gate.get('regressions', []))} regression(s)</b>"
        if gate.get("failed")
        else "passed"
    )
    rows = verdict_rows(run)
    body = [
        "<h2 id='latest'>Latest run against the stored baselines</h2>"
        f"<p>Run {html.escape(str(run.get('created')))}, commit "
        f"<code>{html.escape(str(run.get('commit')))}</code>, "
        f"Python {html.escape(str(env.get('python', '?')))}; gate {status}.</p><p "
        f"class='src'>{html.escape(pkgs)}</p>" + table(rows[0], rows[1:])
    ]
    ratios = _ratio_rows(run, stored)
    if ratios:
        body.append("<h3 id='ratios'>Ratio to baseline</h3>")
        body.append(
            img(
                plot_ratios(ratios, own / "ratio_to_baseline.png"),
                page_dir,
                embed,
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
            f"{html.escape(str(baselines))}: record them with "
            f"<code>{html.escape(RECORD_COMMAND)}</code>.</p>"
        )
    return "".join(body)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``mlperf report``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_source_arguments(
        parser, "latest.json, history/, ab/ and the suites' folders", "the latest run's"
    )
    parser.add_argument(
        "--baselines",
        default=None,
        metavar="DIR",
        help="stored baselines (default: the mlperf_baselines ini option of your pytest "
        f"configuration, else {DEFAULT_BASELINES_DIR})",
    )
    parser.add_argument(
        "--output",
        default=None,
        action=One,
        metavar="PATH",
        help="page to write (default: <reports>/index.html)",
    )
    parser.add_argument(
        "--history",
        type=number(int, 1, inclusive=True),
        action=One,
        default=HISTORY_LIMIT,
        metavar="N",
        help=f"newest commits shown and analysed (default: {HISTORY_LIMIT})",
    )
    parser.add_argument(
        "--threshold",
        type=number(float, 0, inclusive=True),
        action=One,
        default=DEFAULT_AB_THRESHOLD,
        help="band around each benchmark's newest level in the charts "
        f"(default: {DEFAULT_AB_THRESHOLD})",
    )
    parser.add_argument(
        "--self-contained",
        action="store_true",
        help="inline the images and the charts' JavaScript (each page then travels alone)",
    )


def run(args: argparse.Namespace) -> int:
    """``mlperf report``: 0 when the page was written, 2 when the inputs are unusable."""
    from mlperf.inifile import configured_dir

    args.reports = args.reports or configured_dir("reports")
    args.baselines = args.baselines or configured_dir("baselines")
    problem = _unusable(Path(args.reports), Path(args.output) if args.output else None)
    if problem:
        print(f"mlperf report: {problem}", file=sys.stderr)
        return 2
    try:
        page = build_report(
            args.reports,
            args.baselines,
            output=args.output,
            machine=args.machine,
            history_limit=args.history,
            self_contained=args.self_contained,
            threshold=args.threshold,
        )
    except ReportError as exc:
        print(f"mlperf report: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder or file the page cannot be written to
        print(f"mlperf report: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(f"mlperf report: wrote {page}")
    return 0


def _unusable(reports: Path, output: Path | None) -> str | None:
    """Why *reports* (and *output*) cannot make a report, or None."""
    if reports.exists() and not reports.is_dir():
        return f"--reports {str(reports)!r} is a file; give the reports directory"
    if not any((reports / name).exists() for name in ("latest.json", "history", "ab")):
        return (
            f"{str(reports)!r} holds no mlperf run (no latest.json, history/ or ab/): "
            "run `pytest --benchmark-enable` first, or point --reports at the reports directory"
        )
    if output is not None and output.is_dir():
        return f"--output {str(output)!r} is a directory; give the page's file name"
    return None

"""The latest ``mlperf ab`` result in the report: ``reports/ab/latest.json`` and ``latest.md``.

``mlperf ab`` writes them with :func:`write_latest_ab` (its ``--json`` and
``--markdown`` outputs, whatever paths the user chose for those); the report shows
them as a section of their own (:func:`ab_section`).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from mlperf.report.page import markdown_to_html, table
from mlperf.verdicts import change_text

__all__ = ["AB_DIR", "AB_KIND", "ab_section", "load_latest_ab", "write_latest_ab"]

#: the folder of the report directory that holds the latest A/B result
AB_DIR = "ab"
AB_KIND = "mlperf-ab"
_SCHEMA_VERSIONS = (1,)


def write_latest_ab(reports: Path | str, result: dict[str, Any], markdown: str) -> Path:
    """Write an A/B result as ``<reports>/ab/latest.json`` and ``latest.md``; return the first.

    Parameters
    ----------
    reports:
        The report directory (``reports`` by default).
    result:
        ``AbResult.as_dict(samples=False)``: the JSON ``mlperf ab --json`` writes, best without
        the samples (the page shows none of them).
    markdown:
        ``AbResult.markdown()``: the pull-request comment.

    Returns
    -------
    Path
        ``<reports>/ab/latest.json``.
    """
    folder = Path(reports) / AB_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "latest.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (folder / "latest.md").write_text(markdown, encoding="utf-8")
    return path


def load_latest_ab(reports: Path | str) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """The latest A/B result, its markdown, and why it could not be read (each None when absent)."""
    folder = Path(reports) / AB_DIR
    path, md = folder / "latest.json", folder / "latest.md"
    markdown = md.read_text(encoding="utf-8") if md.is_file() else None
    if not path.is_file():
        return None, markdown, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return None, markdown, f"{str(path)!r} is unreadable ({exc}); run `mlperf ab` again"
    if not isinstance(data, dict) or data.get("kind") != AB_KIND:
        return None, markdown, f"{str(path)!r} is not an `mlperf ab` result; run `mlperf ab` again"
    if data.get("schema_version") not in _SCHEMA_VERSIONS:
        return (
            None,
            markdown,
            f"{str(path)!r} has schema_version {data.get('schema_version')!r}; this report reads "
            f"{', '.join(map(str, _SCHEMA_VERSIONS))}; upgrade mlperf or run `mlperf ab` again",
        )
    return data, markdown, None


def ab_section(reports: Path | str) -> str:
    """The page's section on the latest A/B result ('' when there is none)."""
    data, markdown, problem = load_latest_ab(reports)
    if data is None and markdown is None and problem is None:
        return ""
    parts = ["<h2 id='ab'>Latest <code>mlperf ab</code></h2>"]
    if problem:
        parts.append(f"<p class='bad'>{html.escape(problem)}</p>")
    if data is not None:
        rows = []
        for b in data.get("benchmarks", []):
            d = b.get("decision") or {}
            if all(isinstance(d.get(k), int | float) for k in ("ratio", "ci_low", "ci_high")):
                change = change_text(d["ratio"], d["ci_low"], d["ci_high"])
            else:
                change = str(b.get("error") or b.get("skipped") or "-")
            rows.append([str(b.get("id")), str(b.get("verdict")), str(change)])
        threshold = data.get("threshold")
        parts.append(
            f"<p><code>{html.escape(str(data.get('head')))}</code> against "
            f"<code>{html.escape(str(data.get('base')))}</code>"
            + (f", threshold {threshold:.0%}" if isinstance(threshold, int | float) else "")
            + f"; {len(data.get('regressions', []))} regression(s).</p>"
        )
        parts.append(table(["benchmark", "verdict", "change (95% CI)"], rows))
    if markdown:
        # the comment folds its unchanged rows in <details>; here the section itself is folded
        markdown = re.sub(r"<details><summary>(.*?)</summary>", r"**\1**", markdown)
        markdown = markdown.replace("</details>", "")
        parts.append(
            "<details><summary>The pull-request comment (<code>latest.md</code>)</summary>"
            f"<div class='md'>{markdown_to_html(markdown)}</div></details>"
        )
    return "<section class='ab'>" + "".join(parts) + "</section>"

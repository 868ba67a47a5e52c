"""The report's HTML pieces: escaped tables, the suites' markdown, images, family sections."""

from __future__ import annotations

import base64
import csv
import html
import os
import re
from pathlib import Path

__all__ = ["CSS", "SCRIPT", "family_section", "img", "markdown_to_html", "table"]

_MAX_CSV_ROWS = 200


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
            out.append(table(block[0], body, inline=True))
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


def table(header: list[str], rows: list[list[str]], inline: bool = False) -> str:
    cell = _md_inline if inline else html.escape
    head = "".join(f"<th>{cell(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class='{_cls(c)}'>{cell(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cls(cell: str) -> str:
    return "bad" if "REGRESSION" in cell else ""


def img(path: Path, page_dir: Path, embed: bool, caption: str) -> str:
    if embed:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    else:
        src = Path(os.path.relpath(path, page_dir)).as_posix()
    return (
        f"<figure><img src='{html.escape(src)}' alt='{html.escape(caption)}'>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def family_section(family: Path, page_dir: Path, embed: bool) -> str:
    """One family's heading, then its markdown, its charts, and the CSVs no markdown already shows.

    A ``X.csv`` next to a ``X.md`` is the same table in raw form: it becomes a link,
    so wide raw cells do not drown the formatted table.
    """
    name = html.escape(family.name)
    files = sorted(p for p in family.rglob("*") if p.is_file())
    md = [p for p in files if p.suffix.lower() == ".md"]
    pngs = [p for p in files if p.suffix.lower() == ".png"]
    csvs = [p for p in files if p.suffix.lower() == ".csv"]
    parts = []
    for path in md:
        text = markdown_to_html(path.read_text(encoding="utf-8"))
        parts.append(f"<div class='md'><p class='src'>{_rel(path, family)}</p>{text}</div>")
    parts += [img(path, page_dir, embed, path.relative_to(family).as_posix()) for path in pngs]
    for path in csvs:
        if path.with_suffix(".md") in md:
            href = Path(os.path.relpath(path, page_dir)).as_posix()
            parts.append(
                "<p class='src'>raw data: <a "
                f"href='{html.escape(href)}'>{_rel(path, family)}</a></p>"
            )
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if rows:
            more = len(rows) - 1 - _MAX_CSV_ROWS
            shown = f" (first {_MAX_CSV_ROWS} of {len(rows) - 1} rows)" if more > 0 else ""
            parts.append(
                f"<p class='src'>{_rel(path, family)}{shown}</p>"
                + table(rows[0], rows[1 : _MAX_CSV_ROWS + 1])
            )
    if not parts:
        return ""
    return (
        f"<section class='family'><h2 id='family-{name}'>{name}</h2>"
        + "\n".join(parts)
        + "</section>"
    )


def _rel(path: Path, family: Path) -> str:
    return html.escape(path.relative_to(family).as_posix())


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;max-width:36em;overflow-wrap:anywhere}
th{background:#f0f0f0}
td.bad{background:#ffebee;color:#b71c1c;font-weight:bold}
td.good{background:#e8f5e9;color:#1b5e20}p.bad{color:#b71c1c;font-weight:bold}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:.4em 1.2em}
.cell a{font-size:12px}details{margin:.5em 0}
figure{display:inline-block;margin:.5em;vertical-align:top}figcaption{font-size:12px;color:#555}
img{max-width:100%;border:1px solid #ddd}.src{font-size:12px;color:#777;margin:.2em 0}
#img-warning{background:#fff3e0;padding:.5em;display:none}
"""
# Counts the images that really decoded; the browser test reads the counts, and a
# reader who copied index.html without its PNGs is told what to do.
SCRIPT = """
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  document.body.setAttribute('data-images-total', imgs.length);
  document.body.setAttribute('data-images-loaded', ok);
  if (ok < imgs.length) {
    var w = document.getElementById('img-warning');
    w.textContent = (imgs.length - ok) + ' image(s) did not load: keep index.html inside its '
      + 'reports/ folder, or rebuild it with `mlperf report --self-contained`.';
    w.style.display = 'block';
  }
});
"""

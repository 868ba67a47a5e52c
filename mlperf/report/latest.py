"""A run's verdict table and files: the terminal summary, ``latest.json``, ``latest.md`` and
a line of ``history/<machine-id>.jsonl`` (:mod:`mlperf.report.history`).

Written by the plugin at the end of a measured session (:mod:`mlperf.gate`); read
back by ``mlperf report`` (:func:`mlperf.report.load_run`, :func:`mlperf.report.load_history`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mlperf.records import RunRecord

__all__ = ["fmt_bytes", "fmt_seconds", "verdict_rows", "write_run", "write_terminal"]


def fmt_seconds(s: float | None) -> str:
    """``1.23 ms``: three significant digits in s, ms, us or ns; ``-`` for None."""
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_bytes(b: float | None) -> str:
    """``12.3 MiB``; ``-`` for None."""
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def verdict_rows(run: RunRecord) -> list[list[str]]:
    """The verdict table as rows of text (header first), for the terminal and markdown."""
    rows = [["benchmark", "metric", "median", "vs baseline", "peak memory", "verdict"]]
    for rec in run["benchmarks"]:
        v = rec["verdict"]
        mem = rec.get("memory")
        mem_text = fmt_bytes(mem.get("peak") if mem else None) + (
            f" ({v['memory']})" if v["memory"] not in ("new",) else ""
        )
        label = "REGRESSION" if "REGRESSION" in (v["time"], v["memory"]) else v["time"]
        clock = rec.get(rec["metric"])
        median = fmt_seconds(clock.get("median") if clock else None)
        metric: str = rec["metric"]
        count = rec.get("instructions")
        if v.get("clock") == "instructions" and count:
            metric, median = "instructions", f"{count['ir']:,}"
        rows.append([rec["id"], metric, median, v["text"], mem_text, label])
    return rows


def write_run(out: Path, run: RunRecord, *, repo: Path | str | None = ".") -> None:
    """Write ``latest.json`` and ``latest.md`` into *out* and append the run to its history.

    *repo* is a directory inside the measured repository (the pytest root): git tells
    the history the commit's parent, date and subject from there.
    """
    from mlperf.report.history import append_history

    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(run, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    rows = verdict_rows(run)
    md = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    md += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    head = f"# mlperf run on `{run['machine_id']}` at {run['created']} (commit {run['commit']})\n\n"
    (out / "latest.md").write_text(head + "\n".join(md) + "\n", encoding="utf-8")
    append_history(out, run, repo)


def write_terminal(terminalreporter: Any, run: RunRecord, *, no_gate: bool) -> None:
    """The verdict table in pytest's terminal summary, then what was saved and what failed."""
    rows = verdict_rows(run)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    terminalreporter.section(f"mlperf gate: {run['machine_id']}", sep="-")
    for i, row in enumerate(rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        terminalreporter.write_line(line, red=row[-1] == "REGRESSION", bold=i == 0)
    gate = run["gate"]
    if gate["saved"]:
        terminalreporter.write_line(f"mlperf: baseline saved to {', '.join(gate['saved'])}")
    if gate["regressions"]:
        how = " (ignored: --mlperf-no-gate)" if no_gate else ""
        how = " (not gating: --mlperf-save-baseline)" if gate["saved"] else how
        terminalreporter.write_line(
            f"mlperf: {len(gate['regressions'])} REGRESSION(s){how}", red=True, bold=True
        )

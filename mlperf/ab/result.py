"""What an A/B run found, and how it reads: terminal table, PR-comment markdown, JSON."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from mlperf.ab.counts import CountVerdict
from mlperf.ab.types import Measurement
from mlperf.ab.verdict import Decision
from mlperf.records import DEFAULT_COUNT_THRESHOLD
from mlperf.report.latest import fmt_seconds
from mlperf.verdicts import change_text

__all__ = ["SCHEMA_VERSION", "AbResult", "BenchmarkVerdict", "memory_verdict"]

SCHEMA_VERSION = 1
_MIB = 2**20


def memory_verdict(base: list[int], head: list[int], max_regression: float) -> dict[str, Any]:
    """Peak memory of head against base (medians over the processes that measured it).

    The rule is the stored-baseline gate's (:func:`mlperf.stats.memory_verdict`):
    REGRESSION beyond *max_regression* and beyond 2 MiB, so allocator noise on tiny
    peaks never fails a pull request.
    """
    from mlperf.stats import memory_verdict as rule

    if not base or not head:
        return {"base": None, "head": None, "ratio": None, "verdict": "unknown"}
    mb, mh = statistics.median(base), statistics.median(head)
    ratio = mh / mb if mb > 0 else None
    return {
        "base": mb,
        "head": mh,
        "ratio": ratio,
        "verdict": rule(mb, mh, max_regression=max_regression),
    }


@dataclass
class BenchmarkVerdict:
    """The final verdict of one benchmark; *first*: the verdict that asked for a re-measurement."""

    measurement: Measurement
    decision: Decision | None = None
    first: Decision | None = None
    first_measurement: Measurement | None = None  # the samples *first* was decided on
    initial: Measurement | None = None  # the very first measurement, before any second look
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.measurement.id

    @property
    def label(self) -> str:
        if self.measurement.error:
            return "error"
        if self.measurement.skipped:
            return "skipped"
        if self.memory.get("verdict") == "REGRESSION" and (
            self.decision is None or self.decision.verdict != "REGRESSION"
        ):
            return "REGRESSION (memory)"
        return self.decision.verdict if self.decision else "error"

    def brief(self) -> str:
        """The change with its interval and the verdict, or why there is none, on one line."""
        m, d = self.measurement, self.decision
        if m.error or m.skipped or d is None:
            return f"{self.label}: {m.error or m.skipped or 'no samples'}"
        text = f"{change_text(d.ratio, d.ci_low, d.ci_high)} {self.label}"
        if d.verdict == "inconclusive":
            text += f", noise ±{d.noise:.1%}"
        return text

    def as_dict(self, samples: bool = True) -> dict[str, Any]:
        m = self.measurement
        out: dict[str, Any] = {
            "id": m.id,
            "metric": m.metric,
            "verdict": self.label,
            "iterations": m.iterations,
            "decision": self.decision.as_dict() if self.decision else None,
            "first": self.first.as_dict() if self.first else None,
            "memory": self.memory,
            "error": m.error,
            "skipped": m.skipped,
            "same_layout": m.same_layout,
            "extended": m.extended,
        }
        if samples:
            out["samples"] = {"base": m.base, "head": m.head}
            if self.first_measurement is not None:
                f = self.first_measurement
                out["first_samples"] = {"base": f.base, "head": f.head}
            if self.initial is not None and self.initial is not m:
                out["initial_samples"] = {"base": self.initial.base, "head": self.initial.head}
        return out


@dataclass
class AbResult:
    base: str
    head: str
    threshold: float
    benchmarks: list[BenchmarkVerdict]
    only_base: list[str] = field(default_factory=list)
    only_head: list[str] = field(default_factory=list)
    collect_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    counts_: list[CountVerdict] = field(default_factory=list)  # --clock instructions
    count_threshold: float = DEFAULT_COUNT_THRESHOLD

    @property
    def regressions(self) -> list[str]:
        timed = [b.id for b in self.benchmarks if b.label.startswith("REGRESSION")]
        return timed + [f"{c.id} [instructions]" for c in self.counts_ if c.verdict == "REGRESSION"]

    def as_dict(self, samples: bool = True) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "mlperf-ab",
            "base": self.base,
            "head": self.head,
            "threshold": self.threshold,
            "seconds": self.seconds,
            "settings": self.settings,
            "benchmarks": [b.as_dict(samples) for b in self.benchmarks],
            "only_base": self.only_base,
            "only_head": self.only_head,
            "collect_errors": self.collect_errors,
            "regressions": self.regressions,
            "instructions": [c.as_dict() for c in self.counts_],
            "count_threshold": self.count_threshold,
        }

    def rows(self) -> list[list[str]]:
        rows = [
            [
                "benchmark",
                "metric",
                "base",
                "head",
                "change (95% CI)",
                "peak memory",
                "verdict",
            ]
        ]
        for b in self.benchmarks:
            d, m = b.decision, b.measurement
            mem = b.memory
            mem_text = (
                "-"
                if mem.get("base") is None
                else f"{mem['base'] / _MIB:.1f} -> {mem['head'] / _MIB:.1f} MiB"
            )
            if d is None:
                rows.append(
                    [m.id, m.metric, "-", "-", m.error or m.skipped or "-", mem_text, b.label]
                )
                continue
            change = change_text(d.ratio, d.ci_low, d.ci_high)
            label = b.label + (
                " (confirmed)" if b.first is not None and b.first.verdict == d.verdict else ""
            )
            if m.extended:
                label += " (measured twice)"
            if b.first is not None and b.first.verdict != d.verdict:
                label += f" (first run said {b.first.verdict})"
            if d.verdict == "inconclusive":
                label += f", noise ±{d.noise:.1%}"
            rows.append(
                [
                    m.id,
                    m.metric,
                    fmt_seconds(d.base_median),
                    fmt_seconds(d.head_median),
                    change,
                    mem_text,
                    label,
                ]
            )
        return rows

    def all_rows(self) -> list[list[str]]:
        """The table: the time clock's rows, then the instruction clock's."""
        return [*self.rows(), *(c.row() for c in self.counts_)]

    def summary(self) -> str:
        limits = [f"threshold {self.threshold:.0%}"] if self.benchmarks or not self.counts_ else []
        if self.counts_:
            limits.append(f"count threshold {self.count_threshold:.1%}")
        return (
            f"mlperf ab: {self.head} vs {self.base}: {self.counts()}; "
            f"{', '.join(limits)}, {self.seconds:.0f} s"
        )

    def text(self) -> str:
        rows = self.all_rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        return "\n".join([*lines, *self._notes(), self.summary()])

    def counts(self) -> str:
        """``1 REGRESSION, 40 same``: how many benchmarks got each verdict."""
        counts: dict[str, int] = {}
        labels = [b.label for b in self.benchmarks] + [c.verdict for c in self.counts_]
        for label in labels:
            key = label.split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
        order = (
            "REGRESSION",
            "REGRESSION (memory)",
            "IMPROVEMENT",
            "inconclusive",
            "error",
            "skipped",
            "same",
        )
        ranked = sorted(
            counts.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 99, kv[0])
        )
        return ", ".join(f"{n} {k}" for k, n in ranked) or "no benchmarks"

    def markdown(self) -> str:
        """A pull-request comment: the counts first, then the rows that moved, the rest folded."""
        rows = self.all_rows()
        header = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]

        def cells(r: list[str]) -> str:
            verdict = f"**{r[-1]}**" if r[-1].startswith("REGRESSION") else r[-1]
            return "| " + " | ".join([f"`{r[0]}`", *r[1:-1], verdict]) + " |"

        moved = [r for r in rows[1:] if r[-1].split(" (")[0] != "same"]
        same = [r for r in rows[1:] if r[-1].split(" (")[0] == "same"]
        out = [
            f"### mlperf ab: {self.counts()}",
            "",
            f"`{self.head}` vs `{self.base}`, threshold {self.threshold:.0%}, {self.seconds:.0f} s",
            "",
        ]
        if moved:
            out += [*header, *map(cells, moved), ""]
        if same:
            out += [
                f"<details><summary>{len(same)} unchanged (within ±{self.threshold:.0%})</summary>",
                "",
                *header,
                *map(cells, same),
                "",
                "</details>",
                "",
            ]
        out += [f"- {n}" for n in self._notes()]
        out.append(
            "\nREGRESSION = one-sided Mann-Whitney p < 0.01 and the whole 95 % bootstrap interval "
            f"of the median ratio above +{self.threshold:.0%}, confirmed by a re-measurement with "
            "twice the rounds; "
            f"same = the whole interval within ±{self.threshold:.0%}; inconclusive = neither."
            + (
                f" On the instruction clock, REGRESSION = a count more than "
                f"{self.count_threshold:.1%} above base's."
                if self.counts_
                else ""
            )
        )
        return "\n".join(out) + "\n"

    def _notes(self) -> list[str]:
        notes = [f"only in base (not compared): {i}" for i in self.only_base]
        notes += [f"only in head (new, not compared): {i}" for i in self.only_head]
        notes += [f"collection error: {e}" for e in self.collect_errors]
        return notes

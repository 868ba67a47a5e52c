"""``mlperf ab --clock instructions``: each side's benchmarks counted in one valgrind process.

A count repeats to a few instructions in millions, so there are no rounds, no pairs and
no statistics: each side runs one counting session (:func:`mlperf.instructions.count_benchmarks`)
in its own checkout, with its own code first on the path, the same standalone copy of
the counting code in both, and each benchmark's head count is judged against its base
count by :func:`mlperf.verdicts.classify_count`.  A benchmark whose work runs in other
processes, or that waits more than it computes, is refused on either side and says why.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from mlperf.ab.types import AbError, Settings, Side
from mlperf.verdicts import classify_count, count_text

__all__ = ["CountVerdict", "compare_counts"]


@dataclass
class CountVerdict:
    """One benchmark on the instruction clock: both counts and the verdict, or why none."""

    id: str
    base: int | None
    head: int | None
    verdict: str
    text: str

    def row(self) -> list[str]:
        """A row of the result's table (benchmark, metric, base, head, change, memory, verdict)."""
        shown = [f"{x:,}" if x is not None else "-" for x in (self.base, self.head)]
        return [self.id, "instructions", *shown, self.text, "-", self.verdict]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _session(side: Side, settings: Settings, tag: str) -> Any:
    from mlperf.instructions import count_benchmarks, session_dir

    args = [*settings.paths, *(["-k", settings.only] if settings.only else [])]
    own = {
        "prefixes": side.own,
        "allowed": [str(p) for p in side.allowed],
        "compiled": [str(p) for p in side.compiled],
        "side": side.label,
    }
    found = count_benchmarks(
        args,
        session_dir(settings.work_dir / "counts", f"{tag}-"),
        python=side.python,
        cwd=side.root,
        pythonpath=[*side.code_path, side.root],
        env={**side.env, "MLPERF_AB_OWN": json.dumps(own)},
        numba_cache=settings.work_dir / "numba-callgrind",
        cache_sim=False,  # the verdict is on instructions; cycles would cost ~30 % more
    )
    if found.foreign:
        name, path = found.foreign[0]
        raise AbError(
            f"mlperf ab: {side.label} imported {name} from {path}, not from its own revision, "
            f"in its counting session; no count is given for code a side did not run "
            f"(log: {found.log})"
        )
    return found


def compare_counts(
    base: Side, head: Side, settings: Settings, threshold: float, log: Any = None
) -> list[CountVerdict]:
    """Count every benchmark of both sides once and judge head against base."""
    say = log or (lambda _msg: None)
    say("mlperf ab: counting instructions under callgrind, one process per side")
    # Side by side where there are two CPUs: a count does not depend on the machine's load
    # (``make instructions-eval`` counts its processes two at a time and they agree to 0.005 %).
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        futures = {
            tag: pool.submit(_session, side, settings, tag)
            for tag, side in (("base", base), ("head", head))
        }
        sides = {tag: future.result() for tag, future in futures.items()}
    ids = sorted(
        set(sides["base"].counts)
        | set(sides["head"].counts)
        | set(sides["base"].refused)
        | set(sides["head"].refused)
    )
    out = []
    for bid in ids:
        got = {tag: s.counts.get(bid) for tag, s in sides.items()}
        refused = next((s.refused[bid] for s in sides.values() if bid in s.refused), None)
        b, h = (got[t].instructions if got[t] is not None else None for t in ("base", "head"))
        if refused is not None or b is None or h is None:
            why = (refused or "counted on one side only").split(": not counted: ")[-1]
            out.append(CountVerdict(bid, b, h, "not counted", why))
            continue
        verdict = classify_count(b, h, threshold=threshold)
        out.append(CountVerdict(bid, b, h, verdict, count_text(b, h)))
        say(f"  {bid}: {count_text(b, h)} {verdict}")
    for found in sides.values():  # a side whose session went wrong keeps its log and dumps
        found.discard_if_clean(ids)
    return out

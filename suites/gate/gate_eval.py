"""Measure the merge gate: how often it cries wolf, how often it sleeps, what it costs.

Each *trial* is one real ``mlperf ab`` run (fresh worker processes, re-measurement
of anything flagged) of the three benchmarks in ``test_gate_benchmarks.py``, base
= this checkout, head = this checkout with ``MLPERF_GATE_SLOWDOWN`` set to 0
(identical code), 0.05, 0.10 or 0.25.  Conditions are shuffled so that the
machine's changing load falls on all of them alike.  The same first-measurement
samples are also judged by two other rules:

* stored baseline: :func:`mlperf.stats.compare_samples` with ``max_regression``
  0.25 (the plugin's default, :data:`mlperf.records.DEFAULT_MAX_REGRESSION`),
  reference = base samples of one process from the *previous* trial (as a baseline
  recorded earlier in another process), new = head samples of one process of this trial;
* ``min:5%``: pytest-benchmark's ``--benchmark-compare-fail=min:5%`` applied to the
  same-run samples: alarm when min(head) > 1.05 * min(base).

Run ``python suites/gate/gate_eval.py --full`` (``make gate-eval``) for the table in
the README; ``test_gate_error_rates.py`` runs a small version in ``make test``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BENCH_FILE = "suites/gate/test_gate_benchmarks.py"
KINDS = {
    "test_gate_numpy": "numpy",
    "test_gate_python": "pure Python",
    "test_gate_pandas": "pandas",
}
ONLY = " or ".join(KINDS)
CONDITIONS = (0.0, 0.05, 0.10, 0.25)
METHODS = {
    "ab": "mlperf ab (same-run A/B)",
    "stored": "stored baseline (compare_samples, 25 %)",
    "min5": "pytest-benchmark min:5%",
}
FULL = {0.0: 40, 0.05: 20, 0.10: 20, 0.25: 10}
SMALL = {0.0: 3, 0.05: 1, 0.10: 1, 0.25: 2}
#: the gate's targets: false alarms <= 1 %, +5 % >= 95 %, +10 % >= 99 %, time <= 3x a plain run
TARGETS = {0.0: 0.01, 0.05: 0.95, 0.10: 0.99}
TIME_TARGET = 3.0


@dataclass
class Decision:
    """One benchmark in one trial, judged by every method."""

    trial: int
    condition: float
    kind: str
    ab: bool
    ab_first: str
    ab_final: str
    stored: bool | None
    min5: bool
    ratio: float
    seconds: float


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (95 % by default)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _flat(blocks: list[list[list[float]]]) -> list[float]:
    return [x for pair in blocks for block in pair for x in block]


def plain_run_seconds(root: Path = ROOT) -> float:
    """Wall time of one ordinary ``pytest --benchmark-enable`` run of the three benchmarks."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            BENCH_FILE,
            "-k",
            ONLY,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--benchmark-enable",
            "--mlperf-no-gate",
            f"--mlperf-report={tmp}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(
            "plain benchmark run failed "
            f"({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    return took


def evaluate(
    counts: dict[float, int],
    *,
    seed: int = 0,
    plain_runs: int = 3,
    log: Any = print,
    raw: Path | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Run the trials; return decisions, plain-run and A/B times (see the module docstring)."""
    from mlperf.ab import Settings, Side, run_ab

    order = [c for c, n in counts.items() for _ in range(n)]
    random.Random(seed).shuffle(order)
    cfg = Settings(
        paths=[BENCH_FILE],
        only=ONLY,
        work_dir=ROOT / ".cache" / "mlperf" / "ab",
        options={"mlperf_no_gate": True},
        **settings,
    )
    plain: list[float] = []
    decisions: list[Decision] = []
    previous_base: dict[str, list[float]] = {}
    started = time.monotonic()
    for trial, condition in enumerate(order):
        if plain_runs and trial % max(1, len(order) // plain_runs) == 0 and len(plain) < plain_runs:
            plain.append(plain_run_seconds())
            _append(raw, {"plain_seconds": plain[-1]})
        t0 = time.monotonic()
        head_env = {"MLPERF_GATE_SLOWDOWN": f"{condition:g}"}
        result = run_ab(Side("base", ROOT), Side(f"+{condition:.0%}", ROOT, env=head_env), cfg)
        entry = {
            "trial": trial,
            "condition": condition,
            "seconds": time.monotonic() - t0,
            **result.as_dict(),
        }
        _append(raw, entry)  # every sample, so other rules can be judged on the same data later
        decisions += decisions_of(entry, previous_base)
        log(
            f"trial {trial + 1}/{len(order)} +{condition:.0%}: "
            + ", ".join(
                f"{KINDS[b['id'].split('::')[-1]]} {b['verdict']}" for b in entry["benchmarks"]
            )
            + f" ({entry['seconds']:.0f} s)"
        )
    return {
        "decisions": decisions,
        "plain_seconds": plain,
        "seconds": time.monotonic() - started,
        "counts": counts,
        "settings": settings,
    }


def _append(raw: Path | None, entry: dict[str, Any]) -> None:
    if raw is not None:
        raw.parent.mkdir(parents=True, exist_ok=True)
        with open(raw, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def decisions_of(entry: dict[str, Any], previous_base: dict[str, list[float]]) -> list[Decision]:
    """Every rule's call on one trial (an ``mlperf ab`` JSON result plus trial, condition, seconds).

    *previous_base* carries, per kind, the base samples of one process of the
    previous trial: the stored-baseline rule's reference.
    """
    from mlperf.ab.verdict import block_log_ratios
    from mlperf.records import DEFAULT_MAX_REGRESSION
    from mlperf.stats import compare_samples

    out = []
    for b in entry["benchmarks"]:
        kind = KINDS[b["id"].split("::")[-1]]
        init = b.get("initial_samples") or b["samples"]  # the same samples for every rule
        if b["decision"] is None or not init["base"]:
            raise RuntimeError(
                f"gate benchmark {b['id']} did not run: {b['error'] or b['skipped']}"
            )
        a, h = _flat(init["base"]), _flat(init["head"])
        stored = None
        if kind in previous_base:
            stored = (
                compare_samples(
                    previous_base[kind],
                    _flat(init["head"][:1]),
                    max_regression=DEFAULT_MAX_REGRESSION,
                ).verdict
                == "REGRESSION"
            )
        previous_base[kind] = _flat(init["base"][:1])
        logs = [x for pair in block_log_ratios(init["base"], init["head"]) for x in pair]
        out.append(
            Decision(
                trial=entry["trial"],
                condition=entry["condition"],
                kind=kind,
                ab=b["verdict"] == "REGRESSION",
                ab_first=(b["first"] or b["decision"])["verdict"],
                ab_final=b["decision"]["verdict"],
                stored=stored,
                min5=min(h) > 1.05 * min(a),
                ratio=math.exp(statistics.median(logs)),
                seconds=entry["seconds"],
            )
        )
    return out


def from_raw(path: Path) -> dict[str, Any]:
    """Rebuild the outcome of a (possibly interrupted) run from its trials.jsonl."""
    decisions: list[Decision] = []
    plain: list[float] = []
    previous_base: dict[str, list[float]] = {}
    seconds = 0.0
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if "plain_seconds" in entry:
            plain.append(entry["plain_seconds"])
            continue
        decisions += decisions_of(entry, previous_base)
        seconds += entry["seconds"]
    return {
        "decisions": decisions,
        "plain_seconds": plain,
        "seconds": seconds,
        "counts": {},
        "settings": {},
    }


def rates(decisions: list[Decision]) -> dict[tuple[str, float], tuple[int, int]]:
    """(alarms, decisions) per (method, condition), pooled over the three kinds."""
    out: dict[tuple[str, float], tuple[int, int]] = {}
    for method in METHODS:
        for c in sorted({d.condition for d in decisions}):
            vals = [
                getattr(d, method)
                for d in decisions
                if d.condition == c and getattr(d, method) is not None
            ]
            out[method, c] = (sum(bool(v) for v in vals), len(vals))
    return out


def _cell(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.0%} [{lo:.0%}, {hi:.0%}]" if n else "-"


def render(outcome: dict[str, Any]) -> str:
    """The markdown table of error rates, per-kind detail, realised slowdowns and time cost."""
    decisions: list[Decision] = outcome["decisions"]
    conds = sorted({d.condition for d in decisions})
    table = rates(decisions)
    head = ["method"] + [
        ("identical code: false alarms" if c == 0 else f"+{c:.0%}: detected") for c in conds
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, label in METHODS.items():
        lines.append("| " + " | ".join([label] + [_cell(*table[method, c]) for c in conds]) + " |")
    lines += [
        "",
        (
            "mlperf ab per benchmark kind (alarms/decisions) and the slowdown the knob really made "
            "(median over trials of the block-paired median ratio):"
        ),
        "",
        "| kind | " + " | ".join(f"+{c:.0%}" for c in conds) + " |",
        "|" + "---|" * (len(conds) + 1),
    ]
    for kind in KINDS.values():
        cells = []
        for c in conds:
            ds = [d for d in decisions if d.kind == kind and d.condition == c]
            if ds:
                real = statistics.median(d.ratio for d in ds) - 1
                cells.append(f"{sum(d.ab for d in ds)}/{len(ds)} (real {real:+.1%})")
            else:
                cells.append("-")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    verdicts: dict[str, int] = {}
    for d in decisions:
        verdicts[d.ab_final] = verdicts.get(d.ab_final, 0) + 1
    plain = outcome["plain_seconds"]
    per_trial = {
        c: statistics.median({d.trial: d.seconds for d in decisions if d.condition == c}.values())
        for c in conds
    }
    lines += [
        "",
        "Final mlperf ab verdicts over all decisions: "
        f"{', '.join(f'{n} {v}' for v, n in sorted(verdicts.items()))}.",
        "",
    ]
    if plain:
        p = statistics.median(plain)
        lines.append(
            f"Time: one plain `pytest --benchmark-enable` run of the three benchmarks {p:.1f} s "
            f"(median of {len(plain)}); "
            + "; ".join(
                f"one `mlperf ab` at +{c:.0%} {t:.1f} s = {t / p:.1f}x"
                for c, t in per_trial.items()
            )
            + "."
        )
    return "\n".join(lines) + "\n"


def check_bounds(outcome: dict[str, Any], bounds: dict[float, tuple[str, int]]) -> list[str]:
    """Problems with the mlperf ab rates.

    *bounds* maps condition -> ("max" | "min", alarms allowed / needed).
    """
    table = rates(outcome["decisions"])
    problems = []
    for c, (kind, limit) in bounds.items():
        k, n = table["ab", c]
        if kind == "max" and k > limit:
            problems.append(
                f"identical code (+{c:.0%}): {k} false alarms in {n} decisions, at most {limit} "
                "allowed"
            )
        if kind == "min" and k < limit:
            problems.append(f"+{c:.0%}: detected {k} of {n}, at least {limit} needed")
    return problems


def write(outcome: dict[str, Any], out: Path) -> Path:
    """reports/gate/error_rates.md (+ .csv, decisions.jsonl, error_rates.png)."""
    out.mkdir(parents=True, exist_ok=True)
    decisions: list[Decision] = outcome["decisions"]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    from mlperf.baselines import machine_id, machine_info

    info = machine_info()
    loads = f"{', '.join(f'{x:.1f}' for x in load)}" if load else "?"
    header = (
        f"# Gate error rates\n\nMeasured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on "
        f"`{machine_id()}` "
        f"({info['cpu']}, {info['logical_cores']} logical cores, Python {info['python']}); "
        f"{len({d.trial for d in decisions})} `mlperf ab` runs in {outcome['seconds'] / 60:.0f} "
        "min; "
        f"load average when written: {loads}. Rates are alarms/decisions, pooled over the three "
        "benchmark kinds, with 95 % Wilson intervals.\n\n"
    )
    (out / "error_rates.md").write_text(header + render(outcome), encoding="utf-8")
    table = rates(decisions)
    with open(out / "error_rates.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["method", "condition", "alarms", "decisions", "rate", "wilson_low", "wilson_high"]
        )
        for (method, c), (k, n) in sorted(table.items()):
            lo, hi = wilson(k, n)
            w.writerow([method, c, k, n, f"{k / n:.4f}" if n else "", f"{lo:.4f}", f"{hi:.4f}"])
    with open(out / "decisions.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(asdict(d)) + "\n" for d in decisions)
    _plot(table, out / "error_rates.png")
    return out / "error_rates.md"


def _plot(table: dict[tuple[str, float], tuple[int, int]], path: Path) -> None:
    from mlperf.report.charts import pyplot as _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for offset, (method, label) in zip((-0.004, 0.0, 0.004), METHODS.items(), strict=True):
        pts = sorted((c, k, n) for (m, c), (k, n) in table.items() if m == method and n)
        xs = [c * 100 + offset * 100 for c, _, _ in pts]
        ys = [k / n for _, k, n in pts]
        # max(0, ...): at k = 0 or k = n the Wilson bound equals the rate up to rounding
        err = [
            [max(0.0, y - wilson(k, n)[0]) for (_, k, n), y in zip(pts, ys, strict=True)],
            [max(0.0, wilson(k, n)[1] - y) for (_, k, n), y in zip(pts, ys, strict=True)],
        ]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=label)
    ax.axhline(0.95, color="#999999", ls=":", lw=0.8)
    ax.set_xlabel("slowdown of head (%); 0 = identical code")
    ax.set_ylabel("alarm rate (95 % Wilson interval)")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _counts(text: str) -> dict[float, int]:
    try:
        return {float(k): int(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--trials wants e.g. 0=40,0.05=20,0.1=20,0.25=10; got {text!r}"
        ) from None


def instruction_row(trials: int = 5, log: Any = print) -> str:
    """The instruction clock's row: base and head counted once each (one valgrind process
    per side, as ``mlperf ab --clock instructions`` does) for every condition of the knob.

    A count does not drift, so a trial repeats the one before it to within a few
    instructions; *trials* per condition show that it does, not a rate of luck.
    """
    from mlperf.instructions import count_benchmarks
    from mlperf.records import DEFAULT_COUNT_THRESHOLD
    from mlperf.verdicts import classify_count

    out = ROOT / ".cache" / "mlperf" / "gate-counts"
    alarms: dict[float, list[int]] = {c: [0, 0] for c in CONDITIONS}
    seconds: list[float] = []
    for condition in CONDITIONS:
        for trial in range(trials):
            t0 = time.monotonic()
            sides = [
                count_benchmarks(
                    [BENCH_FILE, "-k", ONLY],
                    out / name,
                    python=sys.executable,
                    cwd=ROOT,
                    pythonpath=[ROOT],
                    env={"MLPERF_GATE_SLOWDOWN": f"{slow:g}"},
                )
                for name, slow in (("base", 0.0), ("head", condition))
            ]
            seconds.append(time.monotonic() - t0)
            for bid, base in sides[0].counts.items():
                head = sides[1].counts[bid]
                verdict = classify_count(
                    base.instructions, head.instructions, threshold=DEFAULT_COUNT_THRESHOLD
                )
                alarms[condition][0] += verdict == "REGRESSION"
                alarms[condition][1] += 1
                kind = KINDS[bid.split("::")[-1]]
                change = head.instructions / base.instructions - 1
                log(
                    f"instructions +{condition:.0%} trial {trial + 1}: {kind} "
                    f"{change:+.3%} {verdict}"
                )
    cells = [_cell(*alarms[c]) for c in CONDITIONS]
    took = statistics.median(seconds)
    return (
        f"| mlperf ab --clock instructions ({DEFAULT_COUNT_THRESHOLD:.1%} threshold) | "
        f"{' | '.join(cells)} |\n\n"
        f"Instruction clock: {trials} trials per condition, one counting process per side; "
        f"median {took:.0f} s a trial (both sides)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help=f"the README's evaluation: {FULL}")
    parser.add_argument(
        "--trials", type=_counts, default=None, help="condition=count,... (overrides --full)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "reports" / "gate",
        help="output folder (default: reports/gate)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--from-raw", type=Path, default=None, help="re-render the table from a trials.jsonl"
    )
    parser.add_argument(
        "--max-time", type=float, default=None, help="mlperf ab --max-time (default: its default)"
    )
    parser.add_argument(
        "--pairs", type=int, default=None, help="mlperf ab --pairs (default: its default)"
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="TRIALS",
        help="also the instruction clock's row, TRIALS per condition (needs valgrind)",
    )
    parser.add_argument(
        "--instructions-only", action="store_true", help="only the instruction clock's row"
    )
    args = parser.parse_args(argv)
    if args.instructions_only:
        print(instruction_row(args.instructions or 5, log=lambda m: print(m, flush=True)))
        return 0
    counts = args.trials or (FULL if args.full else SMALL)
    if args.from_raw is not None:
        outcome = from_raw(args.from_raw)
        print(write(outcome, args.out).read_text(encoding="utf-8"))
        return 0
    raw = args.out / "trials.jsonl"
    raw.unlink(missing_ok=True)
    tuning = {
        k: v for k, v in (("max_time", args.max_time), ("pairs", args.pairs)) if v is not None
    }
    outcome = evaluate(
        counts, seed=args.seed, log=lambda m: print(m, flush=True), raw=raw, **tuning
    )
    path = write(outcome, args.out)
    print(path.read_text(encoding="utf-8"))
    if args.instructions:
        print(instruction_row(args.instructions, log=lambda m: print(m, flush=True)))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())

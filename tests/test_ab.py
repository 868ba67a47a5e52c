"""Tests of ``mlperf ab``: the verdict rule, the worker protocol, worktrees and the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _repos import git, slower_repo
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mlperf.ab import AbError, Settings, Side, decide, paired_block_bootstrap, run_ab
from mlperf.ab.result import AbResult, BenchmarkVerdict, memory_verdict
from mlperf.ab.runner import _plan
from mlperf.ab.trees import needs_own_env, resolve
from mlperf.ab.types import Measurement
from mlperf.stats import bootstrap_ratio_ci

# --------------------------------------------------------------- the verdict rule


def _blocks(
    rng: np.random.Generator,
    scale: float,
    pairs: int = 2,
    blocks: int = 20,
    per: int = 5,
    noise: float = 0.02,
    load: np.ndarray | None = None,
) -> list[list[list[float]]]:
    out = []
    for p in range(pairs):
        lf = load[p] if load is not None else np.ones(blocks)
        out.append(
            [list(scale * lf[j] * np.exp(noise * rng.standard_normal(per))) for j in range(blocks)]
        )
    return out


def _flat(blocks: list[list[list[float]]]) -> np.ndarray:
    return np.concatenate([np.ravel(pair) for pair in blocks])


@pytest.mark.parametrize(
    ("scale", "expected"),
    [(1.0, "same"), (1.20, "REGRESSION"), (1 / 1.20, "IMPROVEMENT"), (1.02, "same")],
)
def test_decide_on_quiet_samples(scale: float, expected: str) -> None:
    rng = np.random.default_rng(1)
    d = decide(_blocks(rng, 1e-3), _blocks(rng, 1e-3 * scale), threshold=0.03)
    assert d.verdict == expected
    assert d.ci_low <= d.ratio <= d.ci_high
    assert d.ratio == pytest.approx(scale, rel=0.01)


def test_a_significant_change_inside_the_threshold_is_not_a_regression() -> None:
    rng = np.random.default_rng(2)
    d = decide(_blocks(rng, 1.0, noise=0.005), _blocks(rng, 1.02, noise=0.005), threshold=0.03)
    assert d.p_slower < 1e-6  # clearly slower ...
    assert d.verdict == "same"  # ... but by less than the 3 % that counts


def test_noise_too_high_to_decide_is_inconclusive_and_says_how_noisy() -> None:
    rng = np.random.default_rng(3)
    d = decide(
        _blocks(rng, 1.0, noise=0.4, blocks=4, per=1),
        _blocks(rng, 1.05, noise=0.4, blocks=4, per=1),
    )
    assert d.verdict == "inconclusive"
    assert d.noise > 0.03
    assert "inconclusive, noise ±" in d.text()
    assert d.rounds_to_resolve() > d.n_base


def test_a_regression_needs_the_rank_test_too() -> None:
    # Two rounds per side: the interval can sit above 1.03, but no rank test can reach p < 0.01.
    d = decide([[[1.0], [1.0]]], [[[2.0], [2.0]]], threshold=0.03)
    assert d.ci_low > 1.03
    assert d.p_slower >= 0.01
    assert d.verdict != "REGRESSION"


def test_paired_bootstrap_cancels_load_that_hits_both_sides() -> None:
    rng = np.random.default_rng(4)
    load = np.exp(rng.normal(0, 0.3, (2, 20)))  # the machine's load swings by +-30 % between blocks
    base = _blocks(rng, 1.0, load=load, noise=0.01)
    head = _blocks(rng, 1.06, load=load, noise=0.01)
    ratio, lo, hi = paired_block_bootstrap(base, head)
    ulo, uhi = bootstrap_ratio_ci(_flat(base).tolist(), _flat(head).tolist())
    assert hi - lo < (uhi - ulo) / 2
    assert lo > 1.03  # resolved: a 6 % slowdown, though the load swings by 30 %
    assert ratio == pytest.approx(1.06, rel=0.01)


def test_a_change_of_machine_state_between_blocks_does_not_move_the_ratio() -> None:
    # The same code runs at 3.3 ms or 5.5 ms of CPU time depending on the machine's state,
    # which flips every few blocks; head is 4 % slower.  Head got more slow-state blocks
    # than base, so the ratio of pooled medians is way off; the block-paired ratio is not.
    state = np.array([1.0] * 6 + [1.65] * 4 + [1.0] * 6 + [1.65] * 4)
    base = [[[3.3e-3 * s] * 3 for s in state]]
    head_state = state.copy()
    head_state[[5, 15]] = 1.65  # two block pairs straddle a change of state
    head = [[[3.3e-3 * 1.04 * s] * 3 for s in head_state]]
    assert np.median(_flat(head)) / np.median(_flat(base)) > 1.3
    ratio, lo, _hi = paired_block_bootstrap(base, head)
    assert ratio == pytest.approx(1.04)
    assert lo > 1.03
    assert decide(base, head).verdict == "REGRESSION"


def test_process_pairs_that_disagree_widen_the_interval() -> None:
    # Each pair alone is quiet and sure of itself, but one says +0 % and the other +8 %:
    # that is the luck of two memory layouts, not knowledge, so the verdict must not be sure.
    rng = np.random.default_rng(8)
    base = _blocks(rng, 1.0, pairs=4, noise=0.005)
    head = [
        [[x * f for x in block] for block in pair]
        for pair, f in zip(
            _blocks(rng, 1.0, pairs=4, noise=0.005), (1.0, 1.08, 1.0, 1.08), strict=True
        )
    ]
    _ratio, lo, hi = paired_block_bootstrap(base, head)
    assert lo < 1.01 and hi > 1.07
    assert decide(base, head).verdict == "inconclusive"


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(5)
    a, b = _blocks(rng, 1.0), _blocks(rng, 1.1)
    assert paired_block_bootstrap(a, b, seed=7) == paired_block_bootstrap(a, b, seed=7)


def test_bad_samples_are_refused_with_the_offending_value() -> None:
    with pytest.raises(ValueError, match=r"same number of blocks.*\[2\].*\[1\]"):
        paired_block_bootstrap([[[1.0], [1.0]]], [[[1.0]]])
    with pytest.raises(ValueError, match=r"threshold must be >= 0.*-0.1"):
        decide([[[1.0]]], [[[1.0]]], threshold=-0.1)
    with pytest.raises(ValueError, match="finite"):
        decide([[[float("nan")]]], [[[1.0]]])
    with pytest.raises(ValueError, match="at least one process pair"):
        decide([], [])


@settings(max_examples=30, deadline=None)
@given(
    samples=arrays(np.float64, (2, 6, 3), elements=st.floats(1e-4, 1e-2)),
    factor=st.floats(0.1, 10),
)
def test_scaling_head_scales_the_ratio_and_its_interval(samples: np.ndarray, factor: float) -> None:
    base = samples.tolist()
    head = (samples * factor).tolist()
    d = decide(base, head)
    assert d.ratio == pytest.approx(factor, rel=1e-9)
    assert d.ci_low == pytest.approx(factor, rel=1e-9)
    assert d.ci_high == pytest.approx(factor, rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (2, 8, 2), elements=st.floats(1e-4, 1.0)), st.floats(1e-3, 1e3))
def test_units_do_not_change_the_verdict(samples: np.ndarray, unit: float) -> None:
    rng = np.random.default_rng(0)
    head = samples * rng.uniform(0.8, 1.3, samples.shape)
    a = decide(samples.tolist(), head.tolist())
    b = decide((samples * unit).tolist(), (head * unit).tolist())
    assert a.verdict == b.verdict
    assert a.ratio == pytest.approx(b.ratio, rel=1e-9)


def test_memory_uses_the_stored_gate_rule() -> None:
    mib = 2**20
    assert memory_verdict([10 * mib], [20 * mib], 0.10)["verdict"] == "REGRESSION"
    assert memory_verdict([10 * mib], [10 * mib + 500_000], 0.10)["verdict"] == "same"
    assert memory_verdict([1000], [1500], 0.10)["verdict"] == "same"  # below the 2 MiB floor
    assert memory_verdict([], [1], 0.1)["verdict"] == "unknown"


def test_result_renders_for_a_pull_request() -> None:
    rng = np.random.default_rng(6)
    m = Measurement(
        "suites/x/test_a.py::test_slow", base=_blocks(rng, 1e-3), head=_blocks(rng, 1.3e-3)
    )
    slow = BenchmarkVerdict(m, decision=decide(m.base, m.head), first=decide(m.base, m.head))
    broken = BenchmarkVerdict(
        Measurement("suites/x/test_a.py::test_broken", error="failed in head: boom")
    )
    m_same = Measurement(
        "suites/x/test_a.py::test_steady", base=_blocks(rng, 1e-3), head=_blocks(rng, 1e-3)
    )
    steady = BenchmarkVerdict(m_same, decision=decide(m_same.base, m_same.head))
    assert steady.label == "same"
    result = AbResult(
        "origin/main (abc)",
        "working tree (def)",
        0.03,
        [slow, broken, steady],
        only_head=["suites/x/test_a.py::test_new"],
    )
    md = result.markdown()
    assert md.splitlines()[0] == "### mlperf ab: 1 REGRESSION, 1 error, 1 same"
    moved, folded = md.split("<details>")
    assert "test_slow" in moved and "test_broken" in moved and "test_steady" not in moved
    assert "1 unchanged (within ±3%)" in folded and "test_steady" in folded
    assert "| `suites/x/test_a.py::test_slow` |" in md
    assert "**REGRESSION (confirmed)**" in md
    assert "failed in head: boom" in md
    assert "only in head (new, not compared): suites/x/test_a.py::test_new" in md
    assert result.regressions == ["suites/x/test_a.py::test_slow"]
    data = json.loads(json.dumps(result.as_dict()))
    assert data["kind"] == "mlperf-ab" and data["schema_version"] == 1
    assert data["benchmarks"][0]["samples"]["head"] == m.head


@settings(max_examples=50, deadline=None)
@given(
    call=st.floats(1e-7, 30.0),
    iterations=st.integers(1, 10_000),
    pairs=st.integers(1, 6),
    rounds=st.one_of(st.none(), st.integers(2, 5000)),
)
def test_plan_covers_the_rounds_in_even_numbers_of_blocks(
    call: float, iterations: int, pairs: int, rounds: int | None
) -> None:
    cfg = Settings(pairs=pairs, rounds=rounds)
    blocks, per_block = _plan(cfg, call, iterations)
    assert blocks >= 4 and blocks % 2 == 0 and per_block >= 1
    wanted = rounds or min(
        cfg.max_rounds, max(cfg.min_rounds, math.ceil(cfg.max_time / (call * iterations)))
    )
    assert pairs * blocks * per_block >= wanted  # never fewer rounds than asked for
    assert pairs * (blocks - 2) * per_block < max(wanted, 4 * pairs) + 2 * pairs * per_block


def test_cli_checks_its_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from mlperf.cli import main

    for args, message in (
        (["--rounds", "1"], "--rounds: must be a finite number >= 2; got '1'"),
        (["--pairs", "0"], "--pairs: must be a finite number >= 1; got '0'"),
        (["--threshold", "inf"], "--threshold: must be a finite number >= 0"),
        (["--max-time", "nan"], "--max-time: must be a finite number > 0"),
        (["--rounds=--"], "--rounds needs a value"),
    ):
        with pytest.raises(SystemExit) as exit_:
            main(["ab", "HEAD", *args])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err


# ------------------------------------------------------- workers on a toy project

TOY = """
import os
import time
import pytest

def work(n):
    total = 0
    for i in range(n):
        total += i * i
    return total

N = int(20_000 * float(os.environ.get("TOY_SLOWDOWN", "1")))

def test_loop(benchmark):
    assert benchmark(work, N) == sum(i * i for i in range(N))

def test_pedantic(benchmark):
    seen = []
    def setup():
        seen.append(1)
        return (list(range(2000)),), {}
    result = benchmark.pedantic(sorted, setup=setup, rounds=3)
    assert result == list(range(2000)) and seen

@pytest.mark.mlperf(metric="wall")
def test_wall(benchmark):
    benchmark(time.sleep, 0.001)

def test_fragile(benchmark):
    result = benchmark(work, 10)
    assert os.environ.get("TOY_BREAK") is None, "broken on purpose"

def test_not_a_benchmark():
    pass

@pytest.mark.benchmark
def test_marked():  # pytest-codspeed's style: the whole test is the measured call
    assert work(int(2000 * float(os.environ.get("TOY_SLOWDOWN", "1")))) > 0
"""

QUICK = {"max_time": 0.05, "min_rounds": 6, "pairs": 2, "warmup_time": 0.0}


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    (tmp_path / "test_toy.py").write_text(TOY)
    return tmp_path


def _settings(root: Path, **kw: object) -> Settings:
    return Settings(paths=["test_toy.py"], work_dir=root / ".cache" / "ab", **{**QUICK, **kw})  # type: ignore[arg-type]


def test_run_ab_measures_every_benchmark_in_interleaved_pairs(toy: Path) -> None:
    result = run_ab(Side("base", toy), Side("head", toy), _settings(toy, only="not fragile"))
    by_id = {b.id.split("::")[1]: b for b in result.benchmarks}
    assert set(by_id) == {
        "test_loop",
        "test_pedantic",
        "test_wall",
        "test_marked",
    }  # only benchmarks
    loop = by_id["test_loop"].initial
    assert loop is not None
    assert len(loop.base) == len(loop.head) == 2  # two process pairs
    final = by_id["test_loop"].measurement
    assert len(final.base) == (
        4 if final.extended else 2
    )  # a second look adds two pairs, 2x rounds
    assert [len(p) for p in loop.base] == [len(p) for p in loop.head]  # paired blocks
    assert loop.base_memory and loop.head_memory
    assert by_id["test_wall"].measurement.metric == "wall"
    assert min(x for p in by_id["test_wall"].measurement.base for b in p for x in b) >= 0.001
    assert all(b.decision is not None and b.measurement.error is None for b in result.benchmarks)
    if sys.platform == "linux":  # both workers of a pair share one memory layout
        assert all(b.measurement.same_layout for b in result.benchmarks)


def test_a_benchmark_failing_in_one_side_is_reported_not_compared(toy: Path) -> None:
    head = Side("head", toy, env={"TOY_BREAK": "1"})
    result = run_ab(Side("base", toy), head, _settings(toy, only="fragile or loop", pairs=1))
    by_id = {b.id.split("::")[1]: b for b in result.benchmarks}
    assert by_id["test_fragile"].label == "error"
    assert "failed in head" in (by_id["test_fragile"].measurement.error or "")
    assert "broken on purpose" in (by_id["test_fragile"].measurement.error or "")
    assert by_id["test_loop"].decision is not None  # the other benchmark is still compared


def test_ids_only_one_side_has_are_listed(
    toy: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "test_toy.py").write_text(TOY.replace("def test_wall", "def test_wall_renamed"))
    result = run_ab(Side("base", toy), Side("head", other), _settings(toy, only="wall", pairs=1))
    assert result.only_base == ["test_toy.py::test_wall"]
    assert result.only_head == ["test_toy.py::test_wall_renamed"]
    assert result.benchmarks == []


WHERE = """
import json
import os
import time

def spin():
    with open(os.environ["TOY_WHERE"], "a") as fh:  # one short line per call: appends stay whole
        fh.write(json.dumps([os.getpid(), sorted(os.sched_getaffinity(0)), time.time()]) + "\\n")
    end = time.process_time() + 0.002
    while time.process_time() < end:
        pass

def test_where(benchmark):
    benchmark(spin)
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs 2 CPUs: process pairs run side by side, one per CPU (run on a machine with 2+)",
)
def test_process_pairs_measure_side_by_side_each_on_its_own_cpu(tmp_path: Path) -> None:
    (tmp_path / "test_where.py").write_text(WHERE)
    calls = tmp_path / "calls.jsonl"
    sides = [Side(name, tmp_path, env={"TOY_WHERE": str(calls)}) for name in ("base", "head")]
    cfg = Settings(
        paths=["test_where.py"], work_dir=tmp_path / ".cache", **{**QUICK, "max_time": 0.2}
    )  # type: ignore[arg-type]
    (b,) = run_ab(*sides, cfg, remeasure=False, extend=False).benchmarks
    assert b.decision is not None and len(b.measurement.base) == 2
    spans: dict[tuple[int, ...], dict[int, list[float]]] = {}
    for line in calls.read_text().splitlines():
        pid, cpus, t = json.loads(line)
        spans.setdefault(tuple(cpus), {}).setdefault(pid, []).append(t)
    assert all(len(cpus) == 1 for cpus in spans)  # every call ran pinned to one CPU ...
    assert len(spans) == 2  # ... the two pairs on two different CPUs ...
    assert all(len(pids) == 2 for pids in spans.values())  # ... both workers of a pair on one
    (lo1, hi1), (lo2, hi2) = [
        (min(min(t) for t in pids.values()), max(max(t) for t in pids.values()))
        for pids in spans.values()
    ]
    assert lo1 < hi2 and lo2 < hi1  # and at the same time, not one pair after the other


@pytest.mark.parametrize(
    "addopts", ["--benchmark-only --ff -p pytester", "--benchmark-skip -n 2 --lf"]
)
def test_the_users_addopts_do_not_stop_the_workers(toy: Path, addopts: str) -> None:
    # Common project settings: benchmarks skipped in ordinary runs, or only benchmarks;
    # xdist on by default; the cache plugin's selections.  The workers measure regardless.
    (toy / "pytest.ini").write_text(f"[pytest]\naddopts = {addopts}\n")
    result = run_ab(
        Side("base", toy),
        Side("head", toy),
        _settings(toy, only="test_loop", pairs=1),
        remeasure=False,
        extend=False,
    )
    (loop,) = result.benchmarks
    assert loop.decision is not None, loop.measurement.error or loop.measurement.skipped
    log = (toy / ".cache" / "ab" / "logs" / "m0-base.log").read_text()
    assert "options set aside for measuring" in log  # and the worker says which


def test_a_worker_that_cannot_start_is_reported_with_its_log(toy: Path) -> None:
    (toy / "conftest.py").write_text("raise RuntimeError('conftest exploded')\n")
    with pytest.raises(AbError, match=r"stopped answering(.|\n)*conftest exploded"):
        run_ab(Side("base", toy), Side("head", toy), _settings(toy, pairs=1))


@pytest.mark.timing
def test_a_threefold_slowdown_is_a_confirmed_regression(toy: Path) -> None:
    head = Side("head", toy, env={"TOY_SLOWDOWN": "3"})
    result = run_ab(Side("base", toy), head, _settings(toy, only="test_loop"))
    (loop,) = result.benchmarks
    assert loop.label == "REGRESSION"
    assert loop.first is not None and loop.first.verdict == "REGRESSION"  # re-measured, confirmed
    assert (
        loop.decision is not None and loop.decision.n_base > loop.first.n_base
    )  # with more rounds
    assert result.regressions == [loop.id]


@pytest.mark.timing
def test_a_marker_style_benchmark_is_measured_as_whole_calls(toy: Path) -> None:
    head = Side("head", toy, env={"TOY_SLOWDOWN": "3"})
    (marked,) = run_ab(Side("base", toy), head, _settings(toy, only="test_marked")).benchmarks
    assert marked.label == "REGRESSION", marked.brief()
    assert marked.decision is not None and 2.0 < marked.decision.ratio < 4.5


def _scripted_measure(
    monkeypatch: pytest.MonkeyPatch, looks: dict[str, tuple[float, float]], blocks: int = 20
) -> list[str]:
    """Replace the measuring with synthetic samples: *looks* maps each tag to (ratio, noise)."""
    from mlperf.ab import compare as ab

    calls: list[str] = []

    def fake(
        base: Side,
        head: Side,
        settings: Settings,
        ids: list[str] | None = None,
        *,
        scale: float = 1.0,
        on_collect: object = None,
        tag: str = "m",
        plans: object = None,
        on_measured: object = None,
    ) -> list[Measurement]:
        calls.append(tag)
        if callable(on_collect):
            on_collect(["t.py::b"], ["t.py::b"], [], [])
        ratio, noise = looks[tag]
        rng = np.random.default_rng(len(calls))
        n = round(blocks * scale)
        base_s = _blocks(rng, 1.0, blocks=n, noise=noise)
        head_s = _blocks(rng, ratio, blocks=n, noise=noise)
        m = Measurement("t.py::b", base=base_s, head=head_s)
        if callable(on_measured):
            on_measured(m, True)
        return [m]

    monkeypatch.setattr(ab, "measure", fake)
    return calls


def test_an_inconclusive_benchmark_near_no_change_is_not_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _scripted_measure(monkeypatch, {"m": (1.0, 0.25)}, blocks=30)
    result = run_ab(Side("base", tmp_path), Side("head", tmp_path))
    (b,) = result.benchmarks
    assert b.decision is not None and b.decision.verdict == "inconclusive"
    assert abs(b.decision.ratio - 1) < 0.015  # the estimate sits inside half the threshold
    assert calls == ["m"]


def test_an_inconclusive_benchmark_that_may_have_moved_is_measured_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _scripted_measure(monkeypatch, {"m": (1.06, 0.25), "e": (1.06, 0.25)})
    result = run_ab(Side("base", tmp_path), Side("head", tmp_path), remeasure=False)
    (b,) = result.benchmarks
    assert calls == ["m", "e"]
    assert b.measurement.extended and len(b.measurement.base) == 4  # decided on both looks' pairs


def test_a_flagged_benchmark_whose_second_look_alone_is_too_noisy_is_decided_on_all_samples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = _scripted_measure(monkeypatch, {"m": (1.10, 0.01), "r": (1.10, 0.40)})
    result = run_ab(Side("base", tmp_path), Side("head", tmp_path))
    (b,) = result.benchmarks
    assert calls == ["m", "r"]
    assert b.first is not None and b.first.verdict == "REGRESSION"
    alone = decide(b.measurement.base[2:], b.measurement.head[2:])
    assert alone.verdict == "inconclusive"  # the re-measurement could neither confirm nor clear it
    assert b.label == "REGRESSION" and len(b.measurement.base) == 4  # both looks' process pairs


def test_a_flagged_benchmark_the_second_look_clears_is_not_a_regression(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _scripted_measure(monkeypatch, {"m": (1.10, 0.01), "r": (1.0, 0.01)})
    lines: list[str] = []
    (b,) = run_ab(Side("base", tmp_path), Side("head", tmp_path), log=lines.append).benchmarks
    assert b.first is not None and b.first.verdict == "REGRESSION"
    assert b.label == "same"
    # One progress line as the first look decides it, one when the re-measurement clears it.
    assert any(
        line.startswith("[1/1] t.py::b +") and "REGRESSION (re-measured at the end)" in line
        for line in lines
    ), lines
    assert any(
        line.startswith("  re-measured: t.py::b ") and line.endswith(" same") for line in lines
    ), lines


# ------------------------------------------------------------- git and the CLI


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository with two commits: the toy, then the toy 3x slower."""
    return slower_repo(tmp_path / "repo", "test_toy.py", TOY, TOY.replace("20_000 *", "60_000 *"))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "mlperf.cli", "ab", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


@pytest.mark.timing
def test_cli_ab_head_1_from_a_fresh_clone(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    out = tmp_path / "ab.json"
    proc = _cli(
        clone,
        "HEAD~1",
        "--path",
        "test_toy.py",
        "--only",
        "test_loop",
        "--max-time",
        "0.05",
        "--json",
        str(out),
        "--markdown",
        str(tmp_path / "ab.md"),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["regressions"] == ["test_toy.py::test_loop"]
    assert data["base"].startswith("HEAD~1 (")
    assert "REGRESSION" in (tmp_path / "ab.md").read_text()
    trees = list((clone / ".cache" / "mlperf" / "ab" / "trees").iterdir())
    assert len(trees) == 1 and git(trees[0], "rev-parse", "HEAD") == git(
        clone, "rev-parse", "HEAD~1"
    )


def test_cli_refuses_an_unknown_revision(repo: Path) -> None:
    proc = _cli(repo, "no-such-branch")
    assert proc.returncode == 2
    assert "cannot resolve revision 'no-such-branch'" in proc.stderr


def test_shallow_clone_is_told_to_fetch_history(repo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    with pytest.raises(AbError, match=r"shallow.*git fetch --unshallow"):
        resolve(clone, "HEAD~1")


def test_cli_refuses_paths_missing_in_a_revision(repo: Path) -> None:
    proc = _cli(repo, "HEAD~1", "--path", "suites")
    assert proc.returncode == 2
    assert "has no 'suites'" in proc.stderr


def test_same_pyproject_shares_the_environment(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "pyproject.toml").write_text("[project]\nname='x'\n")
    (b / "pyproject.toml").write_text("[project]\nname='x'\n")
    assert not needs_own_env(b, a)
    (b / "pyproject.toml").write_text("[project]\nname='x'\ndependencies=['numpy<2']\n")
    assert needs_own_env(b, a)

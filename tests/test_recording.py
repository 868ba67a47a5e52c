"""The pytest-benchmark internals that ``mlperf._recording`` relies on are still there."""

from __future__ import annotations

import json

import pytest

INTERNALS = """
import pytest

from mlperf._recording import missing_internals


def _check(benchmark, config, when):
    missing = missing_internals(benchmark, config)
    if missing:
        from importlib.metadata import version

        pytest.fail(
            f"pytest-benchmark {version('pytest-benchmark')} moved {', '.join(missing)} "
            f"({when}); mlperf/_recording.py reaches into them: adapt it",
            pytrace=False,
        )


def test_fixture(benchmark, request):
    _check(benchmark, request.config, "before the rounds")
    benchmark(sum, [1, 2])
    _check(benchmark, request.config, "after benchmark()")


def test_pedantic_with_teardown(benchmark, request):
    calls = []
    benchmark.pedantic(sum, args=([1, 2],), teardown=lambda _x: calls.append(1), rounds=3)
    _check(benchmark, request.config, "after benchmark.pedantic()")
    assert len(calls) == 4  # three timed rounds and the untimed memory round
"""


def test_pytest_benchmark_internals_are_where_recording_expects_them(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_internals=INTERNALS)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--benchmark-enable", "--benchmark-max-time=0.05", "-rf"
    )
    result.assert_outcomes(passed=2)
    run = json.loads((pytester.path / "reports" / "latest.json").read_text())
    for record in run["benchmarks"]:  # else the dual clock no longer pairs with the rounds
        assert record["cpu"]["n"] == record["wall"]["n"] > 0, record["id"]


SIMULATED = """
# A clock that moves only when called or when the workload runs: every reading is
# determined by the sequence of calls, so two runs that call it the same way read the
# same numbers to the last digit (a tick is 2**-20 s, so differences are exact floats
# wherever the run started).
ticks = [0]


def timer():
    ticks[0] += 1
    return ticks[0] / 1048576


def work(n):
    ticks[0] += 50 * n
    return n
"""

FIXED_WORKLOAD = """
import simclock


def test_fast(benchmark):
    benchmark(simclock.work, 3)


def test_pedantic(benchmark):
    benchmark.pedantic(simclock.work, args=(40,), setup=lambda: None, rounds=7, iterations=1)
"""


def _stats(pytester: pytest.Pytester, *extra: str) -> dict[str, dict[str, object]]:
    out = pytester.path / f"bench{len(extra)}.json"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--benchmark-enable",
        "--benchmark-timer=simclock.timer",
        "--benchmark-max-time=0.005",
        "--benchmark-min-rounds=5",
        f"--benchmark-json={out}",
        *extra,
    )
    result.assert_outcomes(passed=2)
    data = json.loads(out.read_text())
    keep = ("min", "max", "mean", "median", "stddev", "rounds", "iterations", "data")
    return {b["name"]: {k: b["stats"][k] for k in keep} for b in data["benchmarks"]}


def test_pytest_benchmarks_own_numbers_are_the_same_with_and_without_mlperf(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(simclock=SIMULATED, test_fixed=FIXED_WORKLOAD)
    pytester.syspathinsert()
    without = _stats(pytester, "-p", "no:mlperf")
    with_mlperf = _stats(pytester, f"--mlperf-report={pytester.path / 'reports'}")
    assert with_mlperf == without  # the configured timer, called exactly as often, same rounds
    assert (pytester.path / "reports" / "latest.json").is_file()  # and mlperf did record them


MANY_ROUNDS = """
def test_many(benchmark):
    benchmark.pedantic(len, args=("x",), rounds=60_000, iterations=1)
"""


def test_the_plugin_keeps_a_few_bytes_per_round_and_a_bounded_record(
    pytester: pytest.Pytester,
) -> None:
    import tracemalloc

    from mlperf.baselines import MAX_SAMPLES

    pytester.makepyfile(test_many=MANY_ROUNDS)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        result = pytester.runpytest("-p", "no:cacheprovider", "--benchmark-enable")
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    result.assert_outcomes(passed=1)
    ours = [tracemalloc.Filter(True, "*/mlperf/_recording.py")]
    kept = sum(
        s.size_diff
        for s in after.filter_traces(ours).compare_to(before.filter_traces(ours), "filename")
    )
    assert kept <= 16 * 60_000 + 64 * 1024  # the CPU clock's 8 bytes a round, nothing per call
    (record,) = json.loads((pytester.path / "reports" / "latest.json").read_text())["benchmarks"]
    assert record["cpu"]["n"] == record["wall"]["n"] == 60_000  # every round is summarised ...
    assert len(record["cpu"]["samples"]) == len(record["wall"]["samples"]) == MAX_SAMPLES  # ...

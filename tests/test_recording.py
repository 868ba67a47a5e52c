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

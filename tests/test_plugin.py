"""The plugin: markers, options, gating skips, recording, and the stored-baseline gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlperf.baselines import SCHEMA_VERSION, machine_id
from mlperf.plugin import MARKERS

#: flags that keep toy benchmark runs short but still give 20+ rounds
FAST = ("-p", "no:cacheprovider", "--benchmark-max-time=0.15", "--benchmark-min-rounds=20")


def test_markers_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for name in ("cluster", "cloud", "gpu", "slow", "spark", "dask", "ray"):
        result.stdout.fnmatch_lines([f"@pytest.mark.mlperf_{name}*"])
    result.stdout.fnmatch_lines(["@pytest.mark.mlperf(*"])
    assert len(MARKERS) == 8
    assert all(name.startswith("mlperf") for name in MARKERS)  # never a project's own names


def test_a_projects_own_slow_and_gpu_markers_are_never_touched(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    slow: ours\n    gpu: ours\n    spark: ours\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slow
        def test_slow(): pass

        @pytest.mark.gpu
        def test_gpu(): pass

        @pytest.mark.spark
        def test_spark(): pass
        """
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=3)  # with mlperf installed they run, as they did without it


def test_the_engine_fixtures_ship_with_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_uses_them(request):
            for name in ("spark", "dask_client", "ray_runtime"):
                assert request.fixturenames is not None
                defs = request._fixturemanager.getfixturedefs(name, request.node)
                assert defs, name
                assert defs[-1].func.__module__ == "mlperf.plugin", name
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_options_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["mlperf: benchmark gates and cluster/cloud tests:"])
    for opt in (
        "--mlperf-cluster",
        "--mlperf-cloud",
        "--mlperf-baselines=DIR",
        "--mlperf-save-baseline",
        "--mlperf-no-gate",
        "--mlperf-report=DIR",
        "--mlperf-slow",
        "--mlperf-confirm=N",
    ):
        result.stdout.fnmatch_lines([f"*{opt}*"])


GATED = """
import pytest

@pytest.mark.mlperf_cloud
def test_cloud(): pass

@pytest.mark.mlperf_slow
def test_slow(): pass

@pytest.mark.mlperf_cluster
@pytest.mark.mlperf_dask
def test_cluster(): pass

@pytest.mark.mlperf_gpu
def test_gpu(): pass
"""


def test_gated_tests_skip_with_the_enabling_hint(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    pytester.makepyfile(GATED)
    result = pytester.runpytest("-rs", "--strict-markers")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines_random(
        [
            "*cloud test: spends money on a real account; enable with --mlperf-cloud*",
            "*slow variant: enable with --mlperf-slow*",
            "*cluster test: enable with --mlperf-cluster and set SPARK_REMOTE, "
            "DASK_SCHEDULER_ADDRESS or RAY_ADDRESS*",
            "*gpu test: no CUDA device found*",
        ]
    )


def test_gated_tests_run_when_enabled(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(GATED)
    for var in ("SPARK_REMOTE", "DASK_SCHEDULER_ADDRESS", "RAY_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    result = pytester.runpytest("--mlperf-cluster")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--mlperf-cluster needs the cluster's address" in result.stderr.str()
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    result = pytester.runpytest("-rs", "--mlperf-cloud", "--mlperf-slow", "--mlperf-cluster")
    result.assert_outcomes(
        passed=2, skipped=2
    )  # the dask cluster test needs its address; gpu needs a GPU
    result.stdout.fnmatch_lines(["*cluster test for dask: set DASK_SCHEDULER_ADDRESS*"])
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    result = pytester.runpytest(
        "--mlperf-cloud", "--mlperf-slow", "--mlperf-cluster", "-k", "not gpu"
    )
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('metric="gpu"', "mlperf metric must be 'cpu', 'wall' or 'instructions', got 'gpu'"),
        (
            "max_regression=-1",
            "mlperf max_regression must be a finite number >= 0 (0.25 means 25 %), got -1",
        ),
        ('max_regression=float("nan")', "mlperf max_regression must be a finite number >= 0"),
        ("max_memory_regression=True", "mlperf max_memory_regression must be a finite number"),
        ("tolerance=0.1", "unknown @pytest.mark.mlperf keyword(s) ['tolerance']"),
    ],
)
def test_bad_marker_values_are_usage_errors(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(f"""
        import pytest
        @pytest.mark.mlperf({marker})
        def test_b(benchmark):
            benchmark(sum, [1, 2])
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert message in result.stdout.str() + result.stderr.str()
    assert result.ret != 0


def _run(toy: pytest.Pytester, *args: str) -> pytest.RunResult:
    return toy.runpytest(*FAST, *args)


def test_records_cpu_and_wall_rounds_and_memory(toy: pytest.Pytester) -> None:
    result = _run(toy)
    assert result.ret == 0
    run = json.loads((toy.path / "reports" / "latest.json").read_text())
    assert run["schema_version"] == 1 and run["machine_id"] == machine_id()
    by_id = {b["id"]: b for b in run["benchmarks"]}
    toy_rec = by_id["test_toy.py::test_toy"]
    assert toy_rec["metric"] == "cpu"
    assert toy_rec["cpu"]["n"] == toy_rec["wall"]["n"] == len(toy_rec["cpu"]["samples"]) >= 20
    # CPU time of a single-threaded loop cannot exceed its wall time by more than clock granularity
    assert toy_rec["cpu"]["median"] <= toy_rec["wall"]["median"] * 1.05 + 1e-5
    assert by_id["test_toy.py::test_toy_memory"]["memory"]["peak"] >= 4_000_000
    assert all(b["verdict"]["time"] == "new" for b in run["benchmarks"])
    history = toy.path / "reports" / "history" / f"{machine_id()}.jsonl"
    line = json.loads(history.read_text().splitlines()[-1])
    assert "samples" not in line["benchmarks"][0]["cpu"]


def test_disabled_benchmarks_record_nothing(toy: pytest.Pytester) -> None:
    result = _run(toy, "--benchmark-disable")
    assert result.ret == 0
    assert not (toy.path / "reports" / "latest.json").exists()


def _save(toy: pytest.Pytester) -> Path:
    result = _run(toy, "--mlperf-save-baseline")
    assert result.ret == 0, result.stdout.str()
    path = toy.path / "baselines" / machine_id() / "toy.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data["benchmarks"]) == {
        "test_toy.py::test_toy",
        "test_toy.py::test_steady",
        "test_toy.py::test_toy_memory",
    }
    return path


@pytest.mark.timing
def test_two_times_slower_fails_the_session_with_a_regression_row(
    toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(toy)
    monkeypatch.setenv("TOY_SLOWDOWN", "2")
    result = _run(toy, "-k", "steady")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["*test_toy.py::test_steady *wall*+*% (+*% .. +*%)*REGRESSION*", "*1 REGRESSION(s)*"]
    )
    run = json.loads((toy.path / "reports" / "latest.json").read_text())
    assert run["gate"]["regressions"] == ["test_toy.py::test_steady"]
    (steady,) = run["benchmarks"]
    assert steady["verdict"]["first"]["time"] == "REGRESSION"  # re-measured, and slow again
    assert len(steady["remeasured"]) == 1 and steady["verdict"]["ratio"] > 1.5
    result = _run(toy, "-k", "steady", "--mlperf-no-gate")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*1 REGRESSION(s) (ignored: --mlperf-no-gate)*"])


@pytest.mark.timing
def test_unchanged_benchmark_passes_five_runs_of_five(toy: pytest.Pytester) -> None:
    # The steady (sleeping) benchmark: this checks the gate, not the machine. How often a
    # CPU-bound benchmark cries wolf on this VM is measured by suites/gate, not asserted.
    _save(toy)
    verdicts = []
    for _ in range(5):
        result = _run(toy, "-k", "steady or memory")
        run = json.loads((toy.path / "reports" / "latest.json").read_text())
        verdicts.append([b["verdict"]["time"] for b in run["benchmarks"]])
        assert result.ret == 0, result.stdout.str()
    assert all("REGRESSION" not in v for v in verdicts)


@pytest.mark.timing
def test_a_slow_spell_is_remeasured_and_passes(
    toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(toy)
    monkeypatch.setenv("TOY_SLOW_ONCE", "1")  # 2x slower on the session's first measurement only
    result = _run(toy, "-k", "steady")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_toy.py::test_steady *re-measured (first +*%)*"])
    (steady,) = json.loads((toy.path / "reports" / "latest.json").read_text())["benchmarks"]
    assert steady["verdict"]["first"]["time"] == "REGRESSION"
    assert steady["verdict"]["time"] in ("same", "IMPROVEMENT", "inconclusive")
    assert steady["wall"]["median"] > 0.0035  # the record keeps the first measurement
    result = _run(toy, "-k", "steady", "--mlperf-confirm=0")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*1 REGRESSION(s)*"])


def test_memory_hungry_variant_is_caught_by_the_memory_gate(
    toy: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _save(toy)
    monkeypatch.setenv("TOY_BYTES", "12000000")
    result = _run(toy, "-k", "memory")
    assert result.ret == 1
    run = json.loads((toy.path / "reports" / "latest.json").read_text())
    (rec,) = run["benchmarks"]
    assert rec["verdict"]["memory"] == "REGRESSION"
    assert rec["verdict"]["memory_ratio"] > 2.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is unreadable or corrupt"),
        (
            json.dumps({"kind": "mlperf-baseline", "schema_version": 99, "benchmarks": {}}),
            "has schema_version 99; this mlperf reads version 1; upgrade mlperf",
        ),
        (
            json.dumps({"kind": "mlperf-baseline", "schema_version": 0, "benchmarks": {}}),
            "has schema_version 0; this mlperf reads version 1; remove it with `rm ",
        ),
    ],
)
def test_corrupt_or_future_baseline_is_refused_clearly(
    toy: pytest.Pytester, content: str, message: str
) -> None:
    path = toy.path / "baselines" / machine_id() / "toy.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    result = _run(toy)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert str(path) in text and message in text


def test_importing_mlperf_and_the_plugin_stays_light() -> None:
    code = (
        "import sys, mlperf, mlperf.plugin, mlperf.data, mlperf.memory, mlperf.stats, "
        "mlperf.baselines, mlperf.cli\n"
        "heavy = ['pyspark', 'ray', 'dask', 'distributed', 'numba', 'sklearn', 'matplotlib', "
        "'boto3',\n"
        "         'sagemaker', 'google.cloud.aiplatform', 'azure.ai.ml', 'scipy', 'cupy']\n"
        "print(','.join(h for h in heavy if h in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--mlperf-save-baseline", "--benchmark-disable"),
            "--mlperf-save-baseline needs measured benchmarks",
        ),
        (("--mlperf-baselines=afile",), "afile' is a file; give a directory (--mlperf-baselines"),
        (("--mlperf-confirm=-1",), "--mlperf-confirm=-1 must be >= 0"),
    ],
)
def test_bad_option_combinations_are_usage_errors(
    toy: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    (toy.path / "afile").write_text("")
    result = toy.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_xdist_groups_stay_on_one_worker(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os, pytest
        @pytest.mark.xdist_group("engine")
        @pytest.mark.parametrize("i", range(6))
        def test_grouped(i):
            with open(f"worker-{i}.txt", "w") as fh:
                fh.write(os.environ["PYTEST_XDIST_WORKER"])
        @pytest.mark.parametrize("i", range(6))
        def test_free(i):
            pass
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"
    )
    result.assert_outcomes(passed=12)
    workers = {(pytester.path / f"worker-{i}.txt").read_text() for i in range(6)}
    assert len(workers) == 1, workers


def test_benchmarks_enabled_over_a_disable_in_addopts_can_save_a_baseline(
    toy: pytest.Pytester,
) -> None:
    # pytest-benchmark's own rule: --benchmark-disable unless --benchmark-enable
    toy.makeini("[pytest]\naddopts = --benchmark-disable\n")
    result = toy.runpytest(*FAST, "--benchmark-enable", "--mlperf-save-baseline", "-k", "steady")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    assert list((toy.path / "baselines").glob("*/*.json"))


def test_locations_come_from_the_projects_ini_and_an_ordinary_run_writes_nothing(
    toy: pytest.Pytester,
) -> None:
    toy.makeini(
        "[pytest]\nmlperf_baselines = perf/baselines\nmlperf_reports = perf/reports\n"
        "mlperf_cache = perf/cache\n"
    )
    result = toy.runpytest("-p", "no:cacheprovider", "--benchmark-disable")  # a unit-test run
    assert result.ret == 0
    assert "mlperf:" not in result.stdout.str()  # quiet unless asked (-v)
    written = {p.name for p in toy.path.iterdir()} - {"test_toy.py", "tox.ini", ".benchmarks"}
    assert not written  # .benchmarks is pytest-benchmark's own
    result = toy.runpytest(*FAST, "--benchmark-enable", "--mlperf-save-baseline", "-k", "steady")
    assert result.ret == 0
    assert list((toy.path / "perf" / "baselines").glob("*/*.json"))
    assert (toy.path / "perf" / "reports" / "latest.json").is_file()
    assert not (toy.path / "baselines").exists() and not (toy.path / "reports").exists()


MARKED = """
import os
import pytest

def work(n):
    return sum(i * i for i in range(n))

@pytest.mark.benchmark
def test_whole_call():  # pytest-codspeed's style: the whole test is measured
    assert work(int(20_000 * float(os.environ.get("TOY_SLOWDOWN", "1")))) > 0
"""


@pytest.mark.timing
def test_marker_style_benchmarks_are_measured_and_gated(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_marked=MARKED)
    result = pytester.runpytest(*FAST, "--benchmark-enable", "--mlperf-save-baseline")
    assert result.ret == 0, result.stdout.str()
    run = json.loads((pytester.path / "reports" / "latest.json").read_text())
    (record,) = run["benchmarks"]
    assert record["id"] == "test_marked.py::test_whole_call" and record["cpu"]["n"] >= 20
    monkeypatch.setenv("TOY_SLOWDOWN", "3")
    result = pytester.runpytest(*FAST, "--benchmark-enable")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*test_whole_call*REGRESSION*"])


def test_require_baseline_fails_a_new_benchmark_with_the_command_that_records_it(
    toy: pytest.Pytester,
) -> None:
    result = toy.runpytest(*FAST, "--benchmark-enable", "--mlperf-require-baseline", "-k", "steady")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*1 benchmark(s) have no stored baseline for * and --mlperf-require-baseline is set*"
            "pytest --benchmark-enable --mlperf-save-baseline*"
        ]
    )
    result = toy.runpytest(*FAST, "--benchmark-enable", "-k", "steady")
    assert result.ret == 0  # without the option a new benchmark passes, reported as new


def test_require_cloud_turns_a_missing_credential_into_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.mlperf_cloud
        def test_real_cloud():
            if not os.environ.get("SOME_CLOUD_KEY"):
                pytest.skip("set SOME_CLOUD_KEY to run against the real account")
        """
    )
    assert pytester.runpytest("--mlperf-cloud").ret == 0  # skipped: the default
    result = pytester.runpytest("--mlperf-require-cloud")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*--mlperf-require-cloud:*set SOME_CLOUD_KEY*"])


def test_mlperfs_numbers_reach_pytest_benchmarks_own_json(toy: pytest.Pytester) -> None:
    out = toy.path / "pb.json"
    result = toy.runpytest(*FAST, "--benchmark-enable", f"--benchmark-json={out}", "-k", "toy")
    assert result.ret == 0
    for bench in json.loads(out.read_text())["benchmarks"]:
        ours = bench["extra_info"]["mlperf"]
        assert ours["verdict"] == "new" and ours["metric"] in ("cpu", "wall")
        assert ours["cpu_median"] > 0 and ours["peak_memory"] is not None


def test_a_stale_install_of_the_project_is_named_once(
    pytester: pytest.Pytester, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The project's package is importable only from a copy outside the checkout, as a
    # regular (not editable) install would be: the run measures that copy.
    elsewhere = tmp_path_factory.mktemp("site-packages")
    (elsewhere / "stalepkg").mkdir()
    (elsewhere / "stalepkg" / "__init__.py").write_text("def f():\n    return 1\n")
    pytester.makepyprojecttoml('[project]\nname = "stalepkg"\n')
    (pytester.path / "src" / "stalepkg").mkdir(parents=True)
    (pytester.path / "src" / "stalepkg" / "__init__.py").write_text("def f():\n    return 2\n")
    pytester.makepyfile(
        test_b=f"""
        import sys
        sys.path.insert(0, {str(elsewhere)!r})
        import stalepkg

        def test_f(benchmark):
            benchmark(stalepkg.f)
        """
    )
    result = pytester.runpytest_subprocess(*FAST, "--benchmark-enable")
    assert result.ret == 0
    lines = [line for line in result.stdout.lines if "mlperf: warning" in line]
    assert len(lines) == 1, result.stdout.str()
    assert "stalepkg was imported from" in lines[0] and "outside" in result.stdout.str()


def test_the_line_by_line_memory_view_runs_beside_mlperf(pytester: pytest.Pytester) -> None:
    pytest.importorskip(
        "pytest_memray", reason='needs the memray extra: pip install "pytest-mlperf[memray]"'
    )
    pytester.makepyfile(
        """
        def build():
            return bytearray(30_000_000)

        def test_mem(benchmark):
            benchmark(build)
        """
    )
    result = pytester.runpytest_subprocess(
        "--memray", "--benchmark-disable", "-p", "no:cacheprovider"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["*Allocation results for test_*test_mem*", "*build:*:2 -> 28.6MiB*"]
    )


def test_baselines_that_cannot_be_saved_fail_the_run_but_the_run_is_written(
    toy: pytest.Pytester,
) -> None:
    blocked = toy.path / "a-file"
    blocked.write_text("")  # a directory below a file can never be made, even by root
    target = blocked / "baselines"
    result = toy.runpytest(
        *FAST,
        "--benchmark-enable",
        "--mlperf-save-baseline",
        f"--mlperf-baselines={target}",
        "-k",
        "steady",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*mlperf: the baselines could not be saved:*"])
    assert (toy.path / "reports" / "latest.json").is_file()

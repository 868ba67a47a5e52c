"""Baseline files: identity, schema checks, atomic and concurrent writes."""

from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest

from mlperf.baselines import (
    BaselineError,
    load_file,
    load_machine,
    machine_id,
    save_records,
    suite_of,
)


def _record(i: int) -> dict:
    samples = [0.001 * (1 + (i % 3) * 0.01)] * 5
    summary = {"n": 5, "median": samples[0], "iqr": 0.0, "min": samples[0], "mean": samples[0]}
    return {
        "id": f"suites/demo/test_x.py::test_{i}",
        "metric": "cpu",
        "cpu": {**summary, "samples": samples},
        "wall": {**summary, "samples": samples},
        "memory": {"peak": 1000 + i, "python": 1000 + i, "rss": None},
    }


def _writer(root: str, start: int, count: int) -> None:
    for i in range(start, start + count):
        save_records(root, [_record(i)], machine="m1", commit="c")


def test_machine_id_is_readable_and_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {
        "cpu": "AMD EPYC 9B45 64-Core Processor",
        "logical_cores": 2,
        "os": "Linux",
        "python": "3.11.7",
    }
    assert machine_id(info) == "amd-epyc-9b45-64-core-processor-2c-linux-py311"
    monkeypatch.setenv("MLPERF_MACHINE_ID", "CI Runner #1")
    assert machine_id(info) == "ci-runner-1"


def test_suite_of() -> None:
    assert suite_of("suites/compute/test_row_norms.py::test_bench[numba]") == "compute"
    assert suite_of("test_toy.py::test_toy") == "toy"


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    # what several xdist workers saving one suite at once do: 4 processes x 10 benchmarks
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k * 10, 10)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    stored = load_machine(tmp_path, "m1")
    assert len(stored) == 40
    assert {e["memory"]["peak"] for e in stored.values()} == {1000 + i for i in range(40)}
    assert not list((tmp_path / "m1").glob("*.tmp")), "temporary files left behind"


def test_save_merges_and_thins(tmp_path: Path) -> None:
    rec = _record(0)
    rec["cpu"]["samples"] = [float(i) for i in range(1000)]
    (path,) = save_records(tmp_path, [rec], machine="m1")
    save_records(tmp_path, [_record(1)], machine="m1")
    data = load_file(path)
    assert set(data["benchmarks"]) == {rec["id"], _record(1)["id"]}
    assert len(data["benchmarks"][rec["id"]]["cpu"]["samples"]) == 200
    assert data["environment"]["packages"]["numpy"]


def test_not_a_baseline_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(BaselineError, match=r"is not an mlperf baseline file"):
        load_file(path)

"""Baseline files: identity, schema checks, atomic and concurrent writes."""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mlperf.baselines import (
    BaselineError,
    known_elsewhere,
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


# ------------------------------------------------------------- issue 14 item 13


def _stored(tmp_path: Path) -> Path:
    (path,) = save_records(tmp_path, [_record(0)], machine="m1")
    return path


def _mangle(path: Path, bid: str, change: object) -> None:
    data = json.loads(path.read_text())
    if callable(change):
        change(data["benchmarks"], bid)
    else:
        data["benchmarks"][bid] = change
    path.write_text(json.dumps(data))


BID = _record(0)["id"]


def _set(*keys: str, value: object):
    def change(benchmarks: dict, bid: str) -> None:
        node = benchmarks[bid]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


MALFORMED = {
    "entry is a list": ([1, 2], "must be a mapping"),
    "entry is null": (None, "must be a mapping"),
    "unknown metric": (_set("metric", value="gpu"), "'metric'.*'gpu'"),
    "clock is a number": (_set("cpu", value=0.5), "'cpu'.*0.5"),
    "samples are text": (_set("cpu", "samples", value="fast"), "'cpu' samples.*'fast'"),
    "a sample is text": (_set("wall", "samples", value=[0.1, "x"]), "'wall' samples.*'x'"),
    "a sample is NaN": (_set("cpu", "samples", value=[0.1, float("nan")]), "'cpu' samples.*nan"),
    "a sample is negative": (_set("cpu", "samples", value=[-1.0]), "'cpu' samples.*-1.0"),
    "a sample is a bool": (_set("cpu", "samples", value=[True]), "'cpu' samples.*True"),
    "median is text": (_set("cpu", "median", value="1ms"), "'cpu' median.*'1ms'"),
    "memory is a list": (_set("memory", value=[1]), "'memory'.*\\[1\\]"),
    "peak is text": (_set("memory", "peak", value="big"), "'memory' peak.*'big'"),
}


@pytest.mark.parametrize("change, match", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_entry_names_the_file_and_the_entry(
    tmp_path: Path, change: object, match: str
) -> None:
    """A valid header over a malformed entry ended the session in a raw traceback that
    named no file (the gate read the entry at the end of the run)."""
    path = _stored(tmp_path)
    _mangle(path, BID, copy.deepcopy(change) if not callable(change) else change)
    with pytest.raises(BaselineError, match=match) as info:
        load_machine(tmp_path, "m1")
    message = str(info.value)
    assert str(path) in message and repr(BID) in message
    assert "rm " in message  # and the fix


def test_unwritable_baselines_directory_is_a_sentence(tmp_path: Path) -> None:
    """A file where the baselines directory should be gave NotADirectoryError."""
    blocker = tmp_path / "baselines"
    blocker.write_text("not a directory")
    with pytest.raises(BaselineError, match=r"cannot write baselines") as info:
        save_records(blocker, [_record(0)], machine="m1")
    assert str(blocker) in str(info.value) and "--mlperf-baselines" in str(info.value)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text("{"),  # corrupt JSON
        lambda p: p.write_text(json.dumps({"kind": "mlperf-baseline", "schema_version": 0})),
        lambda p: _mangle(p, BID, [1]),  # a malformed entry
    ],
    ids=["corrupt", "old schema", "malformed entry"],
)
def test_the_hint_names_a_command_that_works(tmp_path: Path, damage: object) -> None:
    """The old hint (`make baseline`) re-ran the save, which read the same file first
    and failed with the same error.  The hint's command is run here, then the save."""
    path = _stored(tmp_path)
    damage(path)  # type: ignore[operator]
    with pytest.raises(BaselineError) as first:
        save_records(tmp_path, [_record(1)], machine="m1")
    command = re.search(r"`(rm [^`]+)`", str(first.value))
    assert command, str(first.value)
    subprocess.run(shlex.split(command.group(1)), check=True)
    save_records(tmp_path, [_record(1)], machine="m1")
    assert set(load_machine(tmp_path, "m1")) == {_record(1)["id"]}


def test_known_elsewhere_skips_files_it_cannot_read(tmp_path: Path) -> None:
    save_records(tmp_path, [_record(0)], machine="other")
    weird = tmp_path / "third"
    weird.mkdir()
    (weird / "x.json").write_text(json.dumps({"benchmarks": [{"not": "hashable"}]}))
    (weird / "y.json").write_text(json.dumps([1, 2]))
    assert known_elsewhere(tmp_path, "m1") == {_record(0)["id"]}

"""Tests of mlperf.distributed itself: light imports, inputs, merging, addresses, the cluster CLI.

Engine jobs are checked in suites/distributed; here nothing starts an engine.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from mlperf.distributed import cluster, common, network
from mlperf.distributed.peers import duckdb_region_summary, polars_region_summary

SPARK, RAY = pytest.mark.mlperf_spark, pytest.mark.mlperf_ray
HEAVY = (
    "pyspark",
    "ray",
    "dask",
    "distributed",
    "dask_ml",
    "sklearn",
    "matplotlib",
    "duckdb",
    "polars",
)


def test_imports_stay_light() -> None:
    code = (
        "import sys, mlperf.distributed, mlperf.distributed.spark, mlperf.distributed.dask, "
        "mlperf.distributed.ray, mlperf.distributed.peers, mlperf.distributed.cluster\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


# ------------------------------------------------------------------ the reference


def _frame(**cols: list[object]) -> pd.DataFrame:
    base = {
        "region": ["a", "a", "b"],
        "age": [1.0, 3.0, 5.0],
        "income": [2.0, 2.0, 2.0],
        "purchase_amount": [1.0, 2.0, 3.0],
    }
    base.update(cols)
    return pd.DataFrame(base).astype({"region": "str"})


def test_reference_layout_and_values() -> None:
    out = common.region_summary(_frame())
    assert list(out.columns) == list(common.SUMMARY_COLUMNS)
    assert out.index.name == "region" and list(out.index) == ["a", "b"]
    assert out["user_count"].dtype == np.int64
    assert out.loc["a"].to_dict() == pytest.approx(
        {
            "user_count": 2,
            "avg_age": 2.0,
            "std_age": np.sqrt(2.0),
            "avg_income": 2.0,
            "std_income": 0.0,
            "avg_purchase": 1.5,
            "total_purchase": 3.0,
        }
    )
    assert np.isnan(out.loc["b", "std_age"])


def test_reference_reads_parquet(tmp_path: Path) -> None:
    df = _frame()
    df.to_parquet(tmp_path / "part-0.parquet")
    pd.testing.assert_frame_equal(common.region_summary(tmp_path), common.region_summary(df))


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (_frame().drop(columns="age"), KeyError, r"\['age'\]"),
        (_frame(age=["x", "y", "z"]), TypeError, "'age' must be numeric"),
        (_frame(region=["a", None, "b"]), ValueError, "'region' holds 1 missing"),
        ([1, 2], TypeError, "pandas DataFrame"),
        ("/no/such/place", FileNotFoundError, "/no/such/place"),
    ],
)
def test_reference_rejects_bad_input(bad: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        common.region_summary(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("min_users", [-1, 1.5, True, "2"])
def test_min_users_must_be_a_count(min_users: object) -> None:
    with pytest.raises(ValueError, match=f"min_users.*{min_users!r}"):
        common.region_summary(_frame(), min_users=min_users)  # type: ignore[arg-type]


values = st.floats(min_value=-1e9, max_value=1e9, width=64) | st.sampled_from(
    [float("nan"), float("inf"), float("-inf")]
)
frames = data_frames(
    columns=[
        column("region", elements=st.sampled_from(["x", "東京", "y"]), dtype=object),
        column("age", elements=values, dtype=float),
        column("income", elements=values, dtype=float),
        column("purchase_amount", elements=values, dtype=float),
    ],
    index=range_indexes(min_size=1, max_size=60),
).map(lambda df: df.astype({"region": "str"}))


@settings(max_examples=50, deadline=None)
@given(df=frames, cuts=st.lists(st.integers(0, 60), max_size=4))
def test_partials_merge_to_the_reference(df: pd.DataFrame, cuts: list[int]) -> None:
    """Any split into partitions (empty ones too) merges to the one-pass answer."""
    bounds = [0, *sorted(min(c, len(df)) for c in cuts), len(df)]
    parts = pd.concat([common.partial_stats(df.iloc[a:b]) for a, b in itertools.pairwise(bounds)])
    got = common.combine_partials(parts)
    expected = common.region_summary(df)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-3)


@pytest.mark.parametrize("cuts", [[], [1], [2], [1, 2]])
def test_non_finite_values_merge_like_pandas(cuts: list[int]) -> None:
    """Issue 14 item 10: an inf in one partition gave std 0.0 (its partial M2 was filled
    with 0) and inf - inf across partitions vanished from the sum; pandas says NaN."""
    df = _frame(age=[np.inf, 1.0, 5.0], purchase_amount=[np.inf, -np.inf, 3.0])
    bounds = [0, *cuts, len(df)]
    parts = pd.concat([common.partial_stats(df.iloc[a:b]) for a, b in itertools.pairwise(bounds)])
    got = common.combine_partials(parts)
    expected = common.region_summary(df)
    assert np.isnan(expected.loc["a", "std_age"]) and np.isnan(expected.loc["a", "total_purchase"])
    pd.testing.assert_frame_equal(got, expected)


def test_no_partitions_merge_to_an_empty_summary() -> None:
    """Issue 14 item 15: Ray hands over no partial rows for an empty frame (KeyError 'region')."""
    got = common.combine_partials(pd.DataFrame())
    pd.testing.assert_frame_equal(got, common.region_summary(_frame().iloc[:0]))


def test_merge_is_exact_where_sum_of_squares_is_not() -> None:
    rng = np.random.default_rng(0)
    x = 1e8 + rng.normal(0, 1, 10_000)
    df = pd.DataFrame({"region": ["r"] * x.size, "age": x, "income": x, "purchase_amount": x})
    parts = pd.concat([common.partial_stats(df.iloc[i : i + 2500]) for i in range(0, x.size, 2500)])
    got = common.combine_partials(parts).loc["r", "std_age"]
    naive = np.sqrt((np.sum(x**2) - x.size * np.mean(x) ** 2) / (x.size - 1))
    assert got == pytest.approx(np.std(x, ddof=1), rel=1e-9)
    assert abs(naive / np.std(x, ddof=1) - 1) > 1e-3  # the formula our merge avoids


@pytest.mark.parametrize("fn", [duckdb_region_summary, polars_region_summary])
def test_peers_match_reference_and_skip_nan(fn: object, tmp_path: Path) -> None:
    df = _frame(age=[1.0, np.nan, 5.0], purchase_amount=[np.nan, np.nan, 3.0])
    expected = common.region_summary(df)
    pd.testing.assert_frame_equal(fn(df), expected, rtol=1e-12)  # type: ignore[operator]
    assert np.isnan(expected.loc["a", "total_purchase"])
    df.to_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(fn(tmp_path), expected, rtol=1e-12)  # type: ignore[operator]


def test_scores_from_confusion() -> None:
    acc, bal = common.scores_from_confusion({(0, 0): 60, (0, 1): 0, (1, 0): 40, (1, 1): 0})
    assert acc == 0.6 and bal == 0.5  # the majority answer: accurate-looking, balanced 0.5
    with pytest.raises(ValueError, match="empty"):
        common.scores_from_confusion({})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"features": "age"}, ValueError, "features"),
        ({"features": ("a", "a")}, ValueError, "distinct"),
        ({"n_trees": 0}, ValueError, "n_trees.*0"),
        ({"max_depth": 2.5}, ValueError, "max_depth.*2.5"),
        ({"test_size": 1.0}, ValueError, "test_size.*1.0"),
        ({"seed": "1"}, TypeError, "seed"),
    ],
)
def test_forest_arguments_are_checked(kwargs: dict[str, object], error: type, match: str) -> None:
    args = {
        "features": ("age",),
        "n_trees": 10,
        "max_depth": 3,
        "test_size": 0.2,
        "seed": 1,
        **kwargs,
    }
    with pytest.raises(error, match=match):
        common.check_forest_args(*args.values(), func="f")


# -------------------------------------------------------------- config and addresses


def test_tmp_root_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLPERF_TMP", str(tmp_path / "env"))
    assert common.tmp_root("spark") == tmp_path / "env" / "spark"
    assert (tmp_path / "env" / "spark").is_dir()
    assert common.tmp_root("dask", tmp_path / "arg") == tmp_path / "arg" / "dask"
    monkeypatch.delenv("MLPERF_TMP")
    monkeypatch.chdir(tmp_path)
    assert common.tmp_root() == tmp_path / ".cache" / "mlperf" / "tmp"


def test_long_ray_temp_dir_gets_a_short_link(tmp_path: Path) -> None:
    from mlperf.distributed.ray import _SOCKET_BUDGET, _ray_temp

    long_root = tmp_path / ("x" * 80)
    path = _ray_temp(long_root)
    assert len(path) <= _SOCKET_BUDGET
    assert Path(path).resolve() == (long_root / "ray").resolve()
    Path(path).unlink()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("sc://127.0.0.1:15002", ("127.0.0.1", 15002)),
        ("sc://h:1/;user_id=x", ("h", 1)),
        ("tcp://10.0.0.5:8786", ("10.0.0.5", 8786)),
        ("host", ("host", 99)),
        ("[::1]:7", ("::1", 7)),
        ("ray://head:10001", ("head", 10001)),
    ],
)
def test_parse_address(address: str, expected: tuple[str, int]) -> None:
    assert network.parse_address(address, 99, func="f") == expected


def test_parse_address_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="'h:port'"):
        network.parse_address("h:port", 1, func="f")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raises_soon(fn: object, *args: object, **kwargs: object) -> BaseException:
    """Run fn in a thread; it must raise, and not hang (a 60 s guard, not a timing: the
    probes give up after MLPERF_CONNECT_TIMEOUT seconds)."""
    box: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args, **kwargs)  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "hung on an unreachable address"
    assert box, "did not raise"
    return box[0]


def test_unreachable_address_names_it() -> None:
    address = f"sc://127.0.0.1:{_closed_port()}"
    exc = _raises_soon(network.ensure_reachable, address, 1, func="f", what="server", fix="fix it")
    assert isinstance(exc, ConnectionError)
    assert address in str(exc) and "fix it" in str(exc)


def test_an_address_is_named_without_its_token() -> None:
    """A Spark Connect URL carries its credential (``;token=``): the message names the
    address, never the token."""
    address = f"sc://127.0.0.1:{_closed_port()}/;user_id=me;token=s3cr3t-Tok3n"
    with pytest.raises(ConnectionError) as exc:
        network.ensure_reachable(address, 1, func="f", what="server", fix="x")
    assert "s3cr3t" not in str(exc.value) and ";user_id=me;token=[REDACTED]" in str(exc.value)


def _enter(cm_factory: object, **kwargs: object) -> None:
    with cm_factory(**kwargs):  # type: ignore[operator]
        pass


@pytest.mark.mlperf_spark
def test_spark_session_unreachable_remote() -> None:
    from mlperf.distributed.spark import spark_session

    address = f"sc://127.0.0.1:{_closed_port()}"
    exc = _raises_soon(_enter, spark_session, remote=address)
    assert isinstance(exc, ConnectionError) and address in str(exc)


@pytest.mark.mlperf_dask
def test_dask_client_unreachable_and_silent_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlperf.distributed.dask import dask_client

    address = f"tcp://127.0.0.1:{_closed_port()}"
    exc = _raises_soon(_enter, dask_client, address=address)
    assert isinstance(exc, ConnectionError) and address in str(exc)
    # A port that accepts but never answers: Dask's client would wait forever.
    monkeypatch.setenv("MLPERF_CONNECT_TIMEOUT", "2")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        exc = _raises_soon(_enter, dask_client, address=address)
    assert isinstance(exc, ConnectionError) and "did not answer as a Dask scheduler" in str(exc)
    assert address in str(exc)


@contextlib.contextmanager
def _silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield int(silent.getsockname()[1])


def test_a_silent_grpc_port_is_told_from_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP/2 hello gets an answer from a gRPC server and none from a silent port."""
    monkeypatch.setenv("MLPERF_CONNECT_TIMEOUT", "1")
    with _silent_port() as port:
        with pytest.raises(ConnectionError, match=rf"'127.0.0.1:{port}' accepts connections"):
            network.ensure_reachable(
                f"127.0.0.1:{port}", 1, func="f", what="gRPC server", fix="x", hello=b"hi"
            )
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(len(network.HTTP2_HELLO))
                conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # its SETTINGS frame

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        network.ensure_reachable(
            f"127.0.0.1:{port}", 1, func="f", what="gRPC server", fix="x", hello=network.HTTP2_HELLO
        )
        thread.join(10)


@pytest.mark.parametrize(
    ("module", "enter", "scheme", "what"),
    [
        pytest.param("spark", "spark_session", "sc://", "Spark Connect server", marks=SPARK),
        pytest.param("ray", "ray_runtime", "", "Ray head", marks=RAY),
        pytest.param("ray", "ray_runtime", "ray://", "Ray head", marks=RAY),
    ],
)
def test_silent_engine_address_is_named(
    module: str, enter: str, scheme: str, what: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 item 11: SPARK_REMOTE or RAY_ADDRESS at a port that accepts but never
    answers hung past 90 s; ray:// failed after 30 s without naming the address."""
    factory = getattr(__import__(f"mlperf.distributed.{module}", fromlist=[enter]), enter)
    monkeypatch.setenv("MLPERF_CONNECT_TIMEOUT", "2")
    with _silent_port() as port:
        address = f"{scheme}127.0.0.1:{port}"
        kwargs = {"remote" if module == "spark" else "address": address}
        exc = _raises_soon(_enter, factory, **kwargs)
    assert isinstance(exc, ConnectionError), repr(exc)
    assert address in str(exc) and what in str(exc)


@pytest.mark.mlperf_ray
def test_ray_runtime_unreachable_head() -> None:
    from mlperf.distributed.ray import ray_runtime

    address = f"127.0.0.1:{_closed_port()}"
    exc = _raises_soon(_enter, ray_runtime, address=address)
    assert isinstance(exc, ConnectionError) and address in str(exc)


def test_jobs_without_a_session_say_how_to_start_one() -> None:
    # In a fresh process: an xdist worker of this run may hold a live session.
    code = """
import pandas as pd
from mlperf._optional import available
df = pd.DataFrame({"region": ["a"], "age": [1.0], "income": [1.0], "purchase_amount": [1.0]})
for name, module in (("spark", "pyspark"), ("dask", "distributed"), ("ray", "ray")):
    if not available(module):
        continue
    mod = __import__(f"mlperf.distributed.{name}", fromlist=["region_summary"])
    try:
        mod.region_summary(df)
    except RuntimeError as exc:
        print(name, exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out.stdout + out.stderr
    for line, how in zip(
        lines, ("with spark_session()", "with dask_client()", "with ray_runtime()"), strict=True
    ):
        assert how in line, line


# ------------------------------------------------------------ loopback-only servers


class _Conn(NamedTuple):
    laddr: Any
    status: str


class _Proc:
    """A stand-in psutil process with the given listening addresses (no real socket is
    bound beyond loopback by this test)."""

    def __init__(self, pid: int, *addresses: tuple[str, int]) -> None:
        self.pid = pid
        self._conns = [_Conn(SimpleNamespace(ip=ip, port=port), "LISTEN") for ip, port in addresses]

    def name(self) -> str:
        return "server"

    def net_connections(self, kind: str = "inet") -> list[_Conn]:
        return self._conns


def test_exposed_listeners_flags_every_address_but_loopback() -> None:
    procs = [
        _Proc(1, ("127.0.0.1", 1), ("::1", 2), ("::ffff:127.0.0.1", 3), ("127.0.0.5", 4)),
        _Proc(2, ("0.0.0.0", 5), ("::", 6), ("192.0.2.2", 7), ("::ffff:192.0.2.2", 8)),
    ]
    assert network.exposed_listeners(procs) == [
        "server (pid 2) on 0.0.0.0:5",
        "server (pid 2) on :::6",
        "server (pid 2) on 192.0.2.2:7",
        "server (pid 2) on ::ffff:192.0.2.2:8",
    ]
    assert len(network.listening_sockets(procs)) == 8


def test_refuse_exposed_ignores_what_was_there_before(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _Proc(1, ("0.0.0.0", 80))  # the user's own server, up before the engine
    monkeypatch.setattr(network, "process_tree", lambda pid=None: [app])
    before = network.exposed_listeners([app])
    network.refuse_exposed("f", "engine", before)
    monkeypatch.setattr(network, "process_tree", lambda pid=None: [app, _Proc(2, ("::", 9))])
    with pytest.raises(RuntimeError, match=r"f: the local engine listens beyond loopback.*:::9"):
        network.refuse_exposed("f", "engine", before)


@pytest.mark.mlperf_ray
def test_local_ray_settings_force_loopback_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14 item 1: the old code set RAY_AUTH_MODE=disabled and set the single-node
    switch after Ray had read it.  In a fresh process (no Ray of this worker is touched)."""
    code = """
import os
os.environ["RAY_AUTH_MODE"] = "disabled"   # inherited from an old cluster.env
os.environ.pop("RAY_AUTH_TOKEN", None)
import ray
from ray._private import ray_constants, services
from mlperf.distributed.ray import _local_ray_settings
with _local_ray_settings():
    print(os.environ["RAY_AUTH_MODE"], len(os.environ["RAY_AUTH_TOKEN"]),
          services.get_node_ip_address(), ray_constants.ENABLE_RAY_CLUSTER)
print(os.environ["RAY_AUTH_MODE"], "RAY_AUTH_TOKEN" in os.environ, ray_constants.ENABLE_RAY_CLUSTER)
"""
    # Not this process's environment: a Ray of this xdist worker may be running.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    inside, after = out.stdout.strip().splitlines()
    assert inside == "token 64 127.0.0.1 False"
    assert after == "disabled False True"  # the caller's environment is given back


# --------------------------------------------------------------------- cluster CLI


def test_cluster_down_without_services(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster.main(["down", "--dir", str(tmp_path)]) == 0
    assert "nothing" in capsys.readouterr().out


def test_cluster_up_refuses_while_an_earlier_run_lives(tmp_path: Path) -> None:
    # A PID file naming a live process group (this one) must stop `up` before it starts anything.
    (tmp_path / "dask-scheduler.pid").write_text(json.dumps({"pid": os.getpgid(0)}))
    with pytest.raises(RuntimeError, match=r"still run.*down --dir"):
        cluster.up(tmp_path)
    assert not (tmp_path / "cluster.env").exists()


def test_cluster_down_stops_only_its_own_group(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )
    (tmp_path / "ray-head.pid").write_text(json.dumps({"pid": proc.pid}))
    (tmp_path / "cluster.env").write_text("export RAY_ADDRESS=x\n")
    assert cluster.down(tmp_path, grace=10) == ["ray-head"]
    assert not psutil.pid_exists(proc.pid)
    assert not (tmp_path / "ray-head.pid").exists() and not (tmp_path / "cluster.env").exists()

"""Every engine mlperf starts listens on 127.0.0.1 only, and Ray lets no driver in
without its token (issue 14 item 1: a local Ray listened on every interface with
authentication off, and a second driver attached from outside and ran a task).

The engines are the plugin's session fixtures, started the way every suite starts
them (``spark_session``, ``dask_client``, ``ray_runtime``); after a job has run (so
that workers exist) every listening socket of this process and its descendants
must be on loopback.  ``make test-cluster`` checks the cluster's processes in
``test_cluster.py``.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytest
from dist_helpers import DISTRIBUTED, assert_ray_requires_token

from mlperf.distributed.network import listening_sockets, parse_address, process_tree

FRAME = pd.DataFrame(
    {"region": ["a", "b"], "age": [1.0, 2.0], "income": [3.0, 4.0], "purchase_amount": [5.0, 6.0]}
).astype({"region": "str"})


def _engine_port(engine: str, session: Any) -> int:
    """A port the engine's own server listens on, to prove the check sees the engine."""
    if engine == "spark":
        return int(session.conf.get("spark.driver.port"))
    if engine == "dask":
        return parse_address(session.scheduler.address, 0, func="test")[1]
    return parse_address(session.get_runtime_context().gcs_address, 0, func="test")[1]


@pytest.mark.parametrize(("engine", "fixture"), DISTRIBUTED)
def test_local_engine_listens_on_loopback_only(
    engine: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    if os.environ.get(
        {"spark": "SPARK_REMOTE", "dask": "DASK_SCHEDULER_ADDRESS"}.get(engine, "RAY_ADDRESS")
    ):
        pytest.skip("attached to a cluster: test_cluster.py checks the cluster's processes")
    session = request.getfixturevalue(fixture)
    module = __import__(f"mlperf.distributed.{engine}", fromlist=["region_summary"])
    assert len(module.region_summary(FRAME)) == 2  # workers exist now
    sockets = listening_sockets(process_tree())
    assert _engine_port(engine, session) in {s.port for s in sockets}, sockets
    exposed = [str(s) for s in sockets if not s.loopback]
    assert exposed == [], f"{engine} listens beyond loopback: {exposed}"


@pytest.mark.mlperf_ray
@pytest.mark.xdist_group("ray")
def test_ray_refuses_a_driver_without_the_token(ray_runtime: Any) -> None:
    """The GCS and the raylet answer UNAUTHENTICATED to a call without the token (or
    with a wrong one) and answer the same call with it."""
    assert_ray_requires_token(ray_runtime)

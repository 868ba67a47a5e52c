"""A real Dask, Spark Connect and Ray cluster on 127.0.0.1, for the ``cluster`` tests.

``python -m mlperf.distributed.cluster up --dir DIR`` starts a Dask scheduler with
one ``dask worker --nworkers 2 --nthreads 1``, a Spark Connect server
(``$SPARK_HOME/sbin/start-connect-server.sh --wait``, SPARK_HOME found from the
pyspark package) and a Ray head (``ray start --head --block`` with token
authentication, its token in ``DIR/ray-auth-token``, mode 0600), each on a free
loopback port, listening on 127.0.0.1 only, and in its own process group; waits
(bounded) until each accepts connections; and writes ``DIR/cluster.env`` (``export``
lines for SPARK_REMOTE, DASK_SCHEDULER_ADDRESS, RAY_ADDRESS, RAY_AUTH_MODE,
RAY_AUTH_TOKEN_PATH and MLPERF_CLUSTER_DIR; never the token itself) and one PID file
per service.  ``down --dir DIR`` stops exactly those process groups (never
``ray stop``, which kills every Ray process on the host).

:mod:`~mlperf.distributed.cluster.start` starts the services and waits until they accept
connections (:func:`up`); :mod:`~mlperf.distributed.cluster.groups` finds and stops the
process groups their PID files name (:func:`processes`, :func:`down`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mlperf.distributed.cluster.groups import SERVICES as SERVICES
from mlperf.distributed.cluster.groups import TOKEN_FILE as TOKEN_FILE
from mlperf.distributed.cluster.groups import down, processes
from mlperf.distributed.cluster.start import up

__all__ = ["down", "main", "processes", "up"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mlperf.distributed.cluster", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument(
        "--dir",
        required=True,
        type=Path,
        help="folder for cluster.env, PID files, logs, temp files",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds to wait for each service (default 180)",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            t0 = time.perf_counter()
            variables = up(args.dir, timeout=args.timeout)
            print(
                f"cluster up in {time.perf_counter() - t0:.1f} s: "
                + ", ".join(
                    f"{k}={v}"
                    for k, v in variables.items()
                    if k in ("SPARK_REMOTE", "DASK_SCHEDULER_ADDRESS", "RAY_ADDRESS")
                )
            )
        else:
            print(
                "cluster down: stopped " + (", ".join(down(args.dir)) or "nothing (no PID files)")
            )
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0

"""The distributed jobs (region summary, random forest, tuning) on real engines, one per module.

``mlperf.distributed.spark``, ``.dask`` and ``.ray`` each offer the same operations
under the same names (``region_summary``, ``train_forest``) and a session context
manager (``spark_session``, ``dask_client``, ``ray_runtime``) that runs locally by
default and attaches to a real cluster when its address variable is set.
``common`` holds the pandas reference and the shared result types, ``peers`` the
single-machine DuckDB and Polars peers, ``cluster`` a loopback cluster for tests.

Importing this package imports no engine: each module imports its engine inside
the functions that need it, through :func:`mlperf._optional.require`.
"""

from __future__ import annotations

from mlperf.distributed.common import ForestResult, TuneResult, region_summary, tmp_root

__all__ = ["ForestResult", "TuneResult", "region_summary", "tmp_root"]

"""The distributed jobs on Ray: Ray Data, a forest trained in Ray, Ray Tune.

:mod:`~mlperf.distributed.ray.runtime` starts Ray (:func:`ray_runtime`: a local Ray on
127.0.0.1 only, with token authentication, or a running cluster);
:mod:`~mlperf.distributed.ray.jobs` holds the operations every engine module offers
under the same names (:func:`region_summary`, :func:`train_forest`);
:mod:`~mlperf.distributed.ray.tune` the Ray Tune / ASHA search (:func:`tune_forest`).
Import them from here: ``from mlperf.distributed.ray import ray_runtime``.
"""

from __future__ import annotations

from mlperf.distributed.ray.jobs import region_summary, train_forest

# Private, but imported from here since this package was one module (cluster, tests).
from mlperf.distributed.ray.runtime import _SOCKET_BUDGET as _SOCKET_BUDGET
from mlperf.distributed.ray.runtime import _local_ray_settings as _local_ray_settings
from mlperf.distributed.ray.runtime import _ray_temp as _ray_temp
from mlperf.distributed.ray.runtime import ray_runtime
from mlperf.distributed.ray.tune import make_tuning_data, tune_forest

__all__ = ["make_tuning_data", "ray_runtime", "region_summary", "train_forest", "tune_forest"]

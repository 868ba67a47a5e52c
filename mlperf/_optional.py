"""The one place that imports optional dependencies.

Every heavy or optional package (engines, cloud SDKs, numba, matplotlib, ...) is
imported through :func:`require`, inside the function that needs it, so that
``import mlperf`` and loading the pytest plugin stay cheap.  A missing package is
re-raised as an :class:`ImportError` that names the extra to install.

:func:`require` returns a :class:`types.ModuleType`, in which mypy sees no names.
Where the package ships type information (matplotlib, pyspark, polars, duckdb, the
Vertex AI and Azure ML SDKs, ...), call it for its error message and then import
the module in the same function, so that mypy checks every use::

    require("polars", "the Polars peer")
    import polars as pl  # already imported: costs nothing, and pl is typed

Packages without type information (boto3, the SageMaker SDK, scikit-learn, h5py,
CuPy) are used through the module :func:`require` returns.  Dask's client, Ray and
numba ship types that do not fit how mlperf calls them (untyped ``Client``,
``ray.init`` keywords, numba's dynamic ``config``), so they are used that way too.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["DISTRIBUTION", "EXTRA_FOR", "MissingDependency", "available", "require"]

#: the name mlperf is installed by (``mlperf`` on the package index is another project)
DISTRIBUTION = "pytest-mlperf"

#: top-level module -> the mlperf extra that installs it
EXTRA_FOR: dict[str, str] = {
    "numba": "compute",
    "h5py": "io",
    "tables": "io",
    "pyspark": "spark",
    "dask": "dask",
    "distributed": "dask",
    "dask_ml": "dask",
    "sklearn": "dask",
    "ray": "ray",
    "boto3": "aws",
    "botocore": "aws",
    "sagemaker": "aws",
    "moto": "aws",
    "google": "gcp",
    "gcp_storage_emulator": "gcp",
    "azure": "azure",
    "matplotlib": "report",
    "bokeh": "report",
    "duckdb": "peers",
    "polars": "peers",
    "scipy": "dev",
    "cupy": "gpu",
}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message holds the install line."""


def _extra(name: str) -> str:
    return EXTRA_FOR.get(name.split(".")[0], "all")


def install_hint(name: str) -> str:
    """Return the ``pip install`` line that provides module *name*."""
    extra = _extra(name)
    if extra == "gpu":
        return "pip install cupy-cuda12x or cupy-cuda13x (matching your CUDA; needs an NVIDIA GPU)"
    return f'pip install "{DISTRIBUTION}[{extra}]"'


def available(name: str) -> bool:
    """Return True when module *name* can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package raises here
        return False


def require(name: str, purpose: str = "") -> ModuleType:
    """Import and return module *name*, or raise :class:`MissingDependency`.

    Parameters
    ----------
    name:
        Dotted module name, e.g. ``"pyspark.sql"``.
    purpose:
        What the caller wanted it for; goes into the error message.

    Raises
    ------
    MissingDependency
        When the module (or one of its own dependencies) is missing.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingDependency(
            f"mlperf needs {name!r}{what} but it is not installed ({exc}); "
            f"install it with: {install_hint(name)}"
        ) from exc

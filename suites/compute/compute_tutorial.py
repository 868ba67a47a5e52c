"""The tutorial's compute-optimisation code, as it wrote it (timing decorator removed).

Kept apart so the suites can run it beside mlperf's methods and show where it is
wrong: every one of these squares in the input's precision and returns inf at 1e200
and 0 at 1e-200, its float32 path overflows at 1e20, and ``parallel_calculation``
starts a fresh 4-process pool on every call and fails on fewer rows than processes.
"""

from __future__ import annotations

from multiprocessing import Pool

import numpy as np

from mlperf.compute import METHODS

__all__ = ["parallel_calculation", "parallel_chunks", "slow_calculation", "vectorized_calculation"]


def slow_calculation(data: np.ndarray) -> np.ndarray:
    result = []
    for i in range(len(data)):
        sum_val = 0
        for j in range(len(data[i])):
            sum_val += data[i][j] ** 2
        result.append(np.sqrt(sum_val))
    return np.array(result)


def vectorized_calculation(data: np.ndarray) -> np.ndarray:
    return np.sqrt(np.sum(data**2, axis=1))


def parallel_chunks(data: np.ndarray, n_processes: int = 4) -> list[np.ndarray]:
    chunk_size = len(data) // n_processes
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


def parallel_calculation(data: np.ndarray, n_processes: int = 4) -> np.ndarray:
    # the tutorial maps its @jit(nopython=True) loop, which is METHODS["numba"]
    with Pool(n_processes) as pool:
        results = pool.map(METHODS["numba"].func, parallel_chunks(data, n_processes))
    return np.concatenate(results)

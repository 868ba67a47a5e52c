#!/usr/bin/env bash
# The compute family's GPU check, run once on a machine with a CUDA device:
#   bash suites/compute/gpu_check.sh            (results under $OUT, default /tmp/mlperf-gpu)
# Needs CuPy, pytest, pytest-benchmark, hypothesis, numpy, pandas; not numba (the GPU
# image's numba may refuse its numpy) and not an installed mlperf (PYTHONPATH=.).
# 1. the gpu-marked tests and properties (the cuda method, correctness mode);
# 2. the gpu benchmark: cuda kernel vs a device-to-device copy, transfers apart.
set -uo pipefail
OUT=${OUT:-/tmp/mlperf-gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LOG="$OUT/gpu_log.txt"
REPORT=$(mktemp -d)
PYTEST=("$PY" -m pytest -p no:cacheprovider -p no:xdist -m gpu --mlperf-no-gate)
# load the plugin by name only where mlperf is not installed (else it loads twice)
"$PY" -c "import importlib.metadata as m, sys
sys.exit(any(e.name == 'mlperf' for e in m.entry_points(group='pytest11')))" &&
  PYTEST+=(-p mlperf.plugin)

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import sys, numpy, cupy; print(sys.version.split()[0], 'numpy', numpy.__version__, 'cupy', cupy.__version__)"
  "$PY" -c "import numba; print('numba', numba.__version__)" 2>&1 | tail -1
  "$PY" -c "from mlperf.compute import METHODS; print('numba methods usable:', METHODS['safe'].available())"
} >"$LOG" 2>&1

echo "== gpu tests (correctness)" >>"$LOG"
"${PYTEST[@]}" -q -rs --benchmark-disable tests/test_compute.py \
  suites/compute/test_row_norms_properties.py >>"$LOG" 2>&1
tests_rc=$?

echo "== gpu benchmark" >>"$LOG"
"${PYTEST[@]}" -q -rs --benchmark-enable --benchmark-json="$OUT/gpu_bench.json" \
  --mlperf-report "$REPORT" suites/compute/test_row_norms_bench.py >>"$LOG" 2>&1
bench_rc=$?
cp "$REPORT"/compute/row_norms.* "$OUT"/ 2>/dev/null
cat "$OUT/row_norms.md" >>"$LOG" 2>/dev/null
echo "tests rc=$tests_rc bench rc=$bench_rc" >>"$LOG"
cat "$LOG"
exit $((tests_rc || bench_rc))

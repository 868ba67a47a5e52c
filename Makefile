# mlperf: `make bench` measures and gates, `make test` checks.  Each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mlperf-installed
NODE_PREFIX := .cache/node
AZURITE := $(NODE_PREFIX)/node_modules/.bin/azurite-blob
CLUSTER_DIR := .cache/mlperf/cluster
PYTEST := $(BIN)/python -m pytest
# Correctness mode: benchmark bodies run once, untimed; engines grouped on one xdist worker each.
TEST_FLAGS := -n 2 --dist loadgroup --benchmark-disable -m "not mlperf_cluster and not timing"

.PHONY: valgrind setup lint test test-fast test-cluster test-gate bench bench-full baseline report history history-eval gate-eval instructions-eval ab-layouts-eval gpu-check chromium clean

setup: $(STAMP) $(AZURITE)

# Re-installs when pyproject.toml changes (the stamp is older than it).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

$(AZURITE):
	npm install --prefix $(NODE_PREFIX) --no-audit --no-fund --loglevel=error azurite@3.35.0

# Debian's Chromium, only for the test that opens the HTML report in a real browser.
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make chromium: could not install chromium; the report's browser test will say how to enable it"

# valgrind, for the instruction clock (mlperf/instructions): the tests that count need it.
valgrind:
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; } \
	  || echo "make valgrind: could not install valgrind; the instruction-clock tests will say how to enable them"

test: setup chromium valgrind lint
	$(PYTEST) $(TEST_FLAGS) --ignore=suites/gate tests suites
	$(MAKE) --no-print-directory test-cluster
	$(MAKE) --no-print-directory test-gate

lint: setup
	$(BIN)/ruff check mlperf tests suites conftest.py
	$(BIN)/ruff format --check mlperf tests suites conftest.py
	$(BIN)/mypy mlperf

test-fast: setup
	$(PYTEST) $(TEST_FLAGS) --ignore=suites/gate tests suites

# Starts a Dask scheduler + 2 workers, a Spark Connect server and a Ray head on 127.0.0.1,
# runs the `cluster` tests against them, and stops each by its PID whatever happened.
test-cluster: setup
	$(BIN)/python -m mlperf.distributed.cluster up --dir $(CLUSTER_DIR) || exit 1; \
	set -a; . $(CLUSTER_DIR)/cluster.env; set +a; \
	$(PYTEST) -p no:xdist --benchmark-disable -m mlperf_cluster --mlperf-cluster suites/distributed; rc=$$?; \
	$(BIN)/python -m mlperf.distributed.cluster down --dir $(CLUSTER_DIR); exit $$rc

# Tests that measure time (the gate's own error rates) run alone, after everything else.
test-gate: setup
	$(PYTEST) -p no:xdist --benchmark-disable -m timing tests
	$(PYTEST) -p no:xdist --benchmark-disable suites/gate

# The report is written whatever the verdict; the exit status is the gate's.
bench: setup valgrind
	$(PYTEST) -p no:xdist --benchmark-enable suites --ignore=suites/gate; rc=$$?; \
	$(BIN)/mlperf report; exit $$rc

bench-full: setup
	$(PYTEST) -p no:xdist --benchmark-enable --mlperf-slow suites --ignore=suites/gate; rc=$$?; \
	$(BIN)/mlperf report; exit $$rc

baseline: setup valgrind
	$(PYTEST) -p no:xdist --benchmark-enable --mlperf-save-baseline suites --ignore=suites/gate

report: setup
	$(BIN)/mlperf report

# The steps in this machine's history by commit; exits 1 on a slowdown above 3 % in the
# newest 5 commits that still holds (a nightly job's gate: `make bench; make history`).
history: setup
	$(BIN)/mlperf history

# The step detector on 20 seeded synthetic histories (60 commits x 40 benchmarks, this VM's
# measured noise, planted +3 %, +8 %, -10 %), with one and with two runs per commit.
history-eval: setup
	$(BIN)/python -m mlperf.report.synthetic

# The gate's full error-rate evaluation (false alarms, detection at +5/+10/+25 %); long-running.
gate-eval: setup valgrind
	$(BIN)/python suites/gate/gate_eval.py --full --instructions 5

# The instruction clock: counts of four kinds of work in 11 fresh processes each with nothing,
# +1 % and +2 % planted; spread, false alarms and catches at the 0.5 % default and at 1 %.
instructions-eval: setup valgrind
	$(BIN)/python suites/gate/instructions_eval.py --trials 11

# mlperf ab across project layouts: planted change caught, false alarms, cost of preparing a side.
ab-layouts-eval: setup
	$(BIN)/python suites/gate/ab_layouts_eval.py

# On a machine with an NVIDIA GPU and CuPy: the `gpu` tests and the CUDA row-norm benchmark.
gpu-check:
	bash suites/compute/gpu_check.sh

clean:
	rm -rf .cache .benchmarks .hypothesis reports .pytest_cache

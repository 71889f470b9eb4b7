# qhybrid: `make demo` sets up and runs the bundled promotion; `make test` sets up and runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin

export PATH := $(BIN):$(PATH)
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_LOGGING_LEVEL ?= WARNING
export DVC_NO_ANALYTICS := 1
export QHYBRID_PROJECT_ROOT ?= $(CURDIR)

.PHONY: setup data demo serve system-deps test test-slow test-all test-fast lint bench bench-smoke lock schema ui-prefect ui-mlflow clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Generate the pinned problem instances (same bytes as dvc.lock) and push them to the local remote.
data: setup
	$(BIN)/dvc repro --pull --quiet
	$(BIN)/dvc push --quiet

demo: data
	PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL=WARNING $(BIN)/qhybrid promote specs/qaoa-maxcut.yaml
	$(BIN)/qhybrid experiments

# Debian packages some tests use (Chromium, PostgreSQL with pg_trgm, promtool); those tests skip,
# naming the package, where it cannot be installed.
system-deps:
	bash scripts/system-deps.sh

# Import layers, lint and types, every test but the slow end-to-end ones and those that need a
# real IBM token, and each benchmark once (a benchmark that breaks fails here; timings come
# from `make bench`).
test: data lint system-deps
	$(BIN)/python -m pytest -m "not slow and not ibm" --durations=15
	$(MAKE) --no-print-directory bench-smoke

# The slow end-to-end tests: the served job service, the browser, Prefect deployments and
# workers, stops and restarts, a team on PostgreSQL and an MLflow server.
test-slow: data system-deps
	$(BIN)/python -m pytest -m "slow and not ibm" --durations=15

# What CI runs (.ci/run): both of the above.
test-all: test test-slow

test-fast: data
	$(BIN)/python -m pytest -m "not slow and not ibm"

lint: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy

bench-smoke: data
	$(BIN)/python -m pytest benchmarks -o addopts="" --benchmark-disable -q -p no:randomly

bench: data
	$(BIN)/python -m pytest benchmarks --benchmark-enable --benchmark-only \
		--benchmark-columns=min,mean,max,rounds --benchmark-sort=name -p no:randomly

schema: setup
	$(BIN)/python -m qhybrid.schema docs/schema
	$(BIN)/python -m qhybrid_entrypoints.openapi docs/openapi.json

# The service on loopback (Prefect server and UI, deployments, one worker per SLA queue, MLflow
# UI, job API, dispatcher); Ctrl-C stops everything.
serve: data
	$(BIN)/qhybrid serve

lock: setup
	$(BIN)/python -m pip freeze --exclude-editable | sed '/^-e /d' > constraints.txt

ui-prefect: setup
	$(BIN)/prefect server start --host 127.0.0.1 --port 4200

ui-mlflow: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlruns/mlflow.db --host 127.0.0.1 --port 5000

# Every run record and all execution state; mlruns/README.md stays.
clean:
	rm -rf .prefect .qhybrid
	find mlruns -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

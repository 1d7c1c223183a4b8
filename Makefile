# The MLOps loop. `make` alone lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
PYTEST_ARGS ?=
# Test processes of `make test`: most end-to-end tests wait on servers, workers and late
# labels, so two processes keep both cores busy (tests/conftest.py puts the longest first).
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit lint format bench up down deploy prefect-ui mlflow-ui feast-ui clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml requirements.lock
	@echo "==> creating $(VENV) and installing the pinned stack (about 3 minutes on a fresh machine)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -c requirements.lock -e ".[dev]" \
		| awk '/^(Collecting|Successfully)/ {print "    " $$0; fflush()}'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv and install the pinned stack

# checkov pins boto3, networkx and packaging differently from the stack: its own venv.
CHECKOV := .venv-checkov/.installed-checkov-3.3.30
$(CHECKOV):
	@echo "==> installing checkov into .venv-checkov (Terraform policy checks)"
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov || python3 -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --progress-bar off checkov==3.3.30
	@touch $@

# The Prefect UI test drives Debian's Chromium through Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	@echo "==> installing Debian's chromium (the Prefect UI test's headless browser)"
	@apt=$$([ "$$(id -u)" = 0 ] && echo apt-get || echo "sudo -n apt-get"); \
	$$apt install -y -qq chromium >/dev/null 2>&1 \
	|| { $$apt update -qq >/dev/null 2>&1 && $$apt install -y -qq chromium >/dev/null 2>&1; } \
	|| echo "    could not install chromium: the UI test will skip (and fail under CI=true)"

demo: $(STAMP) ## run the training pipeline on the synthetic baseline, then show a bad batch being refused
	$(BIN)/mlops demo

test: $(STAMP) $(CHECKOV) $(CHROMIUM) ## run every test (unit, model, integration, e2e) against the real local services [TEST_WORKERS=n]
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-unit: $(STAMP) ## run the fast tests only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy and the import layers (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP) ## format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## time validation/materialization (100k, 1M rows) and a 20-trial study (1 vs 2 workers)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/training.py

# `make up PROFILE=production`: the server on PostgreSQL (MLOPS_PREFECT_DATABASE_URL) and
# flow runs on the production settings (PostgreSQL, Redis, S3; see .env.example).
# `make up WORKERS=2`: two process workers share the pool's runs.
PROFILE ?=
WORKERS ?= 1
up: $(STAMP) ## start the Prefect server (UI http://127.0.0.1:4200), deploy prefect.yaml, start workers [PROFILE=production WORKERS=n]
	$(BIN)/python -m devstack.localstack up $(if $(PROFILE),--profile $(PROFILE)) --workers $(WORKERS)

down: ## stop what `make up` started (server, workers, service), whatever its profile
	$(BIN)/python -m devstack.localstack down

deploy: $(STAMP) ## (re)register the deployments of prefect.yaml on the running local server
	$(BIN)/python -m devstack.localstack deploy

prefect-ui: $(STAMP) ## serve the Prefect UI over the demo's runs (http://127.0.0.1:4200)
	PREFECT_HOME=$(abspath $(or $(MLOPS_HOME),.mlops))/prefect $(BIN)/prefect server start \
		--host 127.0.0.1 --port 4200 --analytics-off

mlflow-ui: $(STAMP) ## serve the MLflow UI over the demo's runs and registry (http://127.0.0.1:5000)
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 \
		--backend-store-uri sqlite:///$(abspath $(or $(MLOPS_HOME),.mlops))/mlflow.db

feast-ui: $(STAMP) ## serve the Feast UI over the demo's registry (http://127.0.0.1:8888)
	$(BIN)/feast -c feature_repo ui --host 127.0.0.1 --port 8888

clean: ## remove the local state directory (.mlops) — keeps .venv
	rm -rf .mlops

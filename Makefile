# Usage meter for AssemblyAI - developer entry points.
#   make run    the whole service locally (no AWS, no AssemblyAI, no Docker) with a scripted demo
#   make test   lint, types, template checks and every test (what CI runs)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Python 3.13 (the Lambda runtime we target): $PYTHON, python3.13 on PATH, or pyenv's 3.13.x.
PYTHON ?= $(shell for c in python3.13 \
	$$(ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.13*/bin/python3.13 2>/dev/null | sort -rV); do \
	"$$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { command -v "$$c"; break; }; done)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_VERSION := 1.170.0

.PHONY: help
help: ## this list (every target; `make X` for one of them)
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) \
		| awk 'BEGIN {FS = ":.*## "} {printf "make %-14s %s\n", $$1, $$2}'

.PHONY: python-check
python-check: ## check that Python 3.13 is there (the other targets do it)
	@if [ -z "$(PYTHON)" ] || ! "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
		echo "error: Python 3.13 not found (the Lambda runtime this service targets)."; \
		echo "  install it, e.g. 'pyenv install 3.13', or point PYTHON at it: make PYTHON=/path/to/python3.13 ..."; \
		exit 1; \
	fi

$(STAMP): pyproject.toml constraints.txt functions/requirements.txt requirements-dev.txt | python-check
	@echo "Installing the pinned dependencies into $(VENV) (the first time takes about 2 minutes)..."
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-r functions/requirements.txt -r requirements-dev.txt
	@touch $(STAMP)
	@echo "Installed into $(VENV)."

.PHONY: venv
venv: $(STAMP) ## create .venv with the pinned dependencies (the other targets do it when needed)

.PHONY: requirements
requirements: python-check ## regenerate the requirement files and the client package's rule copies
	$(PYTHON) infra/gen_requirements.py
	$(PYTHON) infra/gen_client_rules.py

.PHONY: openapi
openapi: $(STAMP) ## regenerate docs/openapi.json from the routers and models (a test checks it)
	$(VPY) infra/openapi.py

.PHONY: lint
lint: $(STAMP) ## ruff, mypy --strict, cfn-lint, generated files up to date
	$(VPY) infra/gen_requirements.py --check
	$(VPY) infra/gen_client_rules.py --check
	$(VPY) infra/openapi.py --check
	$(VENV)/bin/ruff check functions infra tests benchmarks clients
	$(VENV)/bin/ruff format --check functions infra tests benchmarks clients
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

# pytest runs its tests on every core (pytest-xdist): each worker process has its own embedded
# AWS, AssemblyAI stand-in and ports, and an idle worker takes tests queued for a busy one
# (worksteal). PYTEST_WORKERS=0 runs them in this process (for a debugger).
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: otherwise every worker and every
# local-stack subprocess of the e2e tests compiles (and pytest rewrites) each module again.
PYTEST_WORKERS ?= auto
PYTEST = PYTHONDONTWRITEBYTECODE= $(VPY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal
# The checks and the tests run side by side (make -j); each one's output is printed whole when it
# ends, and make fails if any of them failed.
SIDE_BY_SIDE = $(MAKE) --no-print-directory -j --output-sync=target

.PHONY: test
test: $(STAMP) $(SAM) ## lint, sam validate --lint and every test incl. e2e and sam build (what CI runs)
	@$(SIDE_BY_SIDE) lint validate pytest-all

.PHONY: test-fast
test-fast: $(STAMP) ## lint and the tests without the slow suites (e2e, sam build), side by side
	@$(SIDE_BY_SIDE) lint pytest-fast

.PHONY: pytest-all
pytest-all: $(STAMP) ## every test with coverage (make test runs it beside lint and validate)
	$(PYTEST) --cov --cov-report=term:skip-covered --durations=10

.PHONY: pytest-fast
pytest-fast: $(STAMP) ## the fast tests, properties with a quarter of their examples (make test-fast)
	USAGE_METER_QUICK_PROPERTIES=1 $(PYTEST) -m "not slow" --durations=5

$(SAM): | python-check
	@echo "Installing the SAM CLI $(SAM_VERSION) into $(SAM_VENV) (the first time takes a few minutes)..."
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)

.PHONY: sam
sam: $(SAM) ## install the pinned SAM CLI into .venv-sam

SAM_RUN := SAM_CLI_TELEMETRY=0 PATH="$$(dirname $(PYTHON)):$$PATH" $(SAM)

.PHONY: validate
validate: $(SAM) ## sam validate --lint (the SAM CLI's own template checks)
	$(SAM_RUN) validate --lint --template-file template.yaml

.PHONY: build
build: $(SAM) ## sam build for arm64 (samconfig.toml: cached, parallel)
	$(SAM_RUN) build --template-file template.yaml

# The local stack lives in infra/ (package usage_meter_local) and runs the code in functions/;
# its demo plays the application with the client package in clients/python/src.
LOCAL_STACK := PYTHONPATH=functions:infra:clients/python/src $(VPY) -m usage_meter_local

.PHONY: run
run: $(STAMP) ## run the service locally and show it doing its job (demo, exits by itself)
	$(LOCAL_STACK) demo

.PHONY: local
local: $(STAMP) ## keep the local stack serving for manual use (Ctrl-C to stop)
	$(LOCAL_STACK) serve

.PHONY: bench
bench: $(STAMP) ## the benchmarks (figures go in README.md)
	$(VPY) benchmarks/run_all.py

.PHONY: format
format: $(STAMP) ## ruff --fix and ruff format
	$(VENV)/bin/ruff check --fix functions infra tests benchmarks clients
	$(VENV)/bin/ruff format functions infra tests benchmarks clients

.PHONY: clean
clean: ## remove the virtualenvs, build output and caches
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

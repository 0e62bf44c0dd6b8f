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
help:
	@echo "make run        run the service locally and show it doing its job (demo, exits by itself)"
	@echo "make local      keep the local stack serving for manual use (Ctrl-C to stop)"
	@echo "make test       ruff, mypy, template lint and all tests (what CI runs)"
	@echo "make test-fast  the same without the slow suites"
	@echo "make bench      the benchmarks (figures go in README.md)"
	@echo "make build      sam build (needs python3.13; the SAM CLI is installed into $(SAM_VENV))"
	@echo "make requirements  regenerate functions/requirements.txt and requirements-dev.txt"

.PHONY: python-check
python-check:
	@if [ -z "$(PYTHON)" ] || ! "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
		echo "error: Python 3.13 not found (the Lambda runtime this service targets)."; \
		echo "  install it, e.g. 'pyenv install 3.13', or point PYTHON at it: make PYTHON=/path/to/python3.13 ..."; \
		exit 1; \
	fi

$(STAMP): pyproject.toml constraints.txt functions/requirements.txt requirements-dev.txt | python-check
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install --quiet --disable-pip-version-check -c constraints.txt \
		-r functions/requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

.PHONY: venv
venv: $(STAMP)

.PHONY: requirements
requirements: python-check
	$(PYTHON) infra/gen_requirements.py

.PHONY: lint
lint: $(STAMP)
	$(VPY) infra/gen_requirements.py --check
	$(VENV)/bin/ruff check functions infra tests benchmarks
	$(VENV)/bin/ruff format --check functions infra tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml

.PHONY: test
test: lint
	$(VPY) -m pytest --cov --cov-report=term:skip-covered

.PHONY: test-fast
test-fast: lint
	$(VPY) -m pytest -m "not slow"

$(SAM): | python-check
	@test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check aws-sam-cli==$(SAM_VERSION)

.PHONY: sam
sam: $(SAM)

.PHONY: build
build: $(SAM)
	SAM_CLI_TELEMETRY=0 PATH="$$(dirname $(PYTHON)):$$PATH" $(SAM) build --template-file template.yaml

# The local stack lives in infra/ (package usage_meter_local) and runs the code in functions/.
LOCAL_STACK := PYTHONPATH=functions:infra $(VPY) -m usage_meter_local

.PHONY: run
run: $(STAMP)
	$(LOCAL_STACK) demo

.PHONY: local
local: $(STAMP)
	$(LOCAL_STACK) serve

.PHONY: bench
bench: $(STAMP)
	$(VPY) benchmarks/run_all.py

.PHONY: format
format: $(STAMP)
	$(VENV)/bin/ruff check --fix functions infra tests benchmarks
	$(VENV)/bin/ruff format functions infra tests benchmarks

.PHONY: clean
clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

# FleetPortal: `make run` starts the portal with demo data, `make test` runs the test suite.
# Both set everything up on a fresh machine (virtualenv, dependencies, database).

SHELL := /bin/bash
.DEFAULT_GOAL := help
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python

# A Python >= 3.12 that really runs: python3.14/3.13/3.12/python3 on PATH, else pyenv's versions.
PYTHON ?= $(shell \
  ok() { "$$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; }; \
  for p in python3.14 python3.13 python3.12 python3; do \
    c=$$(command -v $$p 2>/dev/null) && ok "$$c" && { echo "$$c"; exit 0; }; \
  done; \
  root=$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv"); \
  for c in $$(ls -d "$$root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
    ok "$$c" && { echo "$$c"; exit 0; }; \
  done)

.PHONY: help run test bench lint format migrations check-python clean production acceptance

help:
	@echo "make run    - start FleetPortal with demo data on http://127.0.0.1:$(PORT) (web, workers, beat)"
	@echo "make test   - run the test suite"
	@echo "make bench  - run the benchmarks in bench/ and print their figures"
	@echo "make lint   - ruff check + format check, import layering (import-linter), types (mypy)"
	@echo "make production - the production build on this machine (gunicorn, workers, beat; PostgreSQL, Redis)"
	@echo "make acceptance - the production build, a fleet manager's journey in Chromium against it, stopped"

check-python:
	@if [ -z "$(PYTHON)" ]; then \
	  echo "FleetPortal needs Python 3.12 or newer, and none was found."; \
	  echo "Install python3.13 (or 3.12), or pyenv with a 3.12+ version, or run: make PYTHON=/path/to/python3.13 ..."; \
	  exit 1; fi

$(VENV)/.created: | check-python
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@touch $@

$(VENV)/.installed-run: requirements.txt $(VENV)/.created
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.created
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.installed-run

# Development defaults for `make run`: DEBUG on, embedded SQLite + filesystem broker unless
# DATABASE_URL / CELERY_BROKER_URL are set, the simulator on.
run: export DJANGO_DEBUG ?= 1
run: export SITE_URL ?= http://127.0.0.1:$(PORT)
# The demo's approved vehicles show new telemetry every minute instead of every five.
run: export TELEMETRY_PULL_INTERVAL_SECONDS ?= 60
# Webhook endpoints on this machine (a local receiver) are allowed in the demo.
run: export OUTGOING_WEBHOOKS_ALLOW_PRIVATE ?= 1
run: export PORT := $(PORT)
run: export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
run: $(VENV)/.installed-run
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo
	@echo "Starting web (http://127.0.0.1:$(PORT)), Celery workers and beat. Ctrl-C stops all of them."
	$(VENV)/bin/honcho start -f Procfile -p $(PORT)

test: $(VENV)/.installed-dev
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The production build without Docker (docs/operations.md): the Dockerfile's build, then the
# Procfile's processes with DJANGO_DEBUG=0 on PostgreSQL + Redis. `acceptance` is CI's step.
production: | check-python
	PYTHON=$(PYTHON) scripts/production_local.sh serve

acceptance: $(VENV)/.installed-dev
	PYTHON=$(PYTHON) scripts/production_local.sh acceptance

# Every benchmark in turn, then one table: FleetPortal beside its ceilings (bench/run.py).
# BENCH_ARGS="--runs 3" for medians of three runs, "--only fleet_overview" for one benchmark.
bench: $(VENV)/.installed-dev
	$(PY) bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var staticfiles .pytest_cache .ruff_cache

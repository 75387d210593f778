# Cockpit — the two commands in the README: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Test processes (pytest-xdist): one per core by default; PYTEST_WORKERS=0 runs in this process.
PYTEST_WORKERS ?= auto

.PHONY: demo serve test check lint format typecheck imports sizes pytest install install-dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Cockpit needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## demo: virtualenv, install, migrate SQLite, seed the demo organisation, serve on :8000
demo: $(VENV)/.installed
	$(BIN)/cockpit demo --host $(HOST) --port $(PORT)

serve: $(VENV)/.installed
	$(BIN)/cockpit serve --host $(HOST) --port $(PORT)

## test: dev extras, quality gates, the whole suite. The gates (~15 s of one core, mostly mypy) run
## beside the suite, in its start-up and its waits; make test fails if either fails.
test: $(VENV)/.installed-dev
	@$(MAKE) --no-print-directory -j2 --output-sync=line check pytest

check: lint typecheck imports sizes

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

## sizes: no source file over 600 lines
sizes: $(VENV)/.installed-dev
	$(BIN)/python scripts/check_file_sizes.py

## imports: the layering contracts in pyproject.toml ([tool.importlinter])
imports: $(VENV)/.installed-dev
	$(BIN)/lint-imports

# worksteal: each process starts with half of the tests (SQLite's, then PostgreSQL's: each backend's
# servers are mostly started by one process) and takes half of what the other has left when it runs
# out, so both finish together.
pytest: $(VENV)/.installed-dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal --durations=25

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache test-artifacts

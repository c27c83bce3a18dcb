# PreSettle: two commands for a fresh clone.
#   make run   — the service (embedded broker unless PRESETTLE_KAFKA_BOOTSTRAP is set)
#   make test  — the whole suite (the chaos suite included; PRESETTLE_CHAOS_LONG=1 for its long variants)
#   make soak  — a benchmark: steady load for SOAK_MINUTES (30), RSS and p50/p99 per minute
# Development (README.md, Development):
#   make lint       — ruff + mypy (configured in pyproject.toml)
#   make test-fast  — the suite without broker, browser or Prometheus
#   make lock       — refresh requirements.lock / requirements-dev.lock from pyproject.toml
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Pinned versions with hashes: what `make install` installs (runtime + embedded broker + test + dev).
LOCK     := requirements-dev.lock
COMPILE  := $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
            --no-emit-find-links --no-emit-index-url

SOAK_MINUTES ?= 30
SOAK_RATE    ?= 50
SOAK_WORKERS ?= 1

.PHONY: install run test test-fast lint lock soak clean

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/presettle run

test: install
	$(BIN)/python tests/setup_system.py
	$(BIN)/python -m pytest -q -ra

soak: install
	$(BIN)/python -m loadtest.soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --workers $(SOAK_WORKERS)

test-fast: install
	$(BIN)/python -m pytest -q -ra -m "not e2e" --ignore=tests/e2e --ignore=tests/ops

lint: install
	$(BIN)/ruff check services tests loadtest deploy
	$(BIN)/mypy

# Re-resolve every dependency to its newest allowed version (pyproject.toml ranges) and pin it
# with hashes: requirements.lock (the runtime, for images) and $(LOCK) (everything make installs).
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(BIN)/pip-compile || $(BIN)/python -m pip install --quiet pip-tools
	$(COMPILE) --upgrade -o requirements.lock pyproject.toml
	$(COMPILE) --upgrade --extra embedded --extra test --extra dev -o $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .artifacts build dist

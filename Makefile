# PreSettle: two commands for a fresh clone.
#   make run   — the service (embedded broker unless PRESETTLE_KAFKA_BOOTSTRAP is set)
#   make test  — the whole suite (the chaos suite included; PRESETTLE_CHAOS_LONG=1 for its long variants)
#   make soak  — a benchmark: steady load for SOAK_MINUTES (30), RSS and p50/p99 per minute
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

SOAK_MINUTES ?= 30
SOAK_RATE    ?= 50
SOAK_WORKERS ?= 1

.PHONY: install run test soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m services.stack

test: install
	$(BIN)/python tests/setup_system.py
	$(BIN)/python -m pytest -q -ra

soak: install
	$(BIN)/python -m loadtest.soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --workers $(SOAK_WORKERS)

clean:
	rm -rf $(VENV) .pytest_cache .artifacts

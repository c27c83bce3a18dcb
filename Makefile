# PreSettle: two commands for a fresh clone.
#   make run   — the service (embedded broker unless PRESETTLE_KAFKA_BOOTSTRAP is set)
#   make test  — the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test clean

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

clean:
	rm -rf $(VENV) .pytest_cache .artifacts

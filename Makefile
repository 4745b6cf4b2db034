# The project's verbs. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-unit test-integration lint soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/borderflow demo

test: lint
	$(BIN)/pytest -m "not soak"

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install
	$(BIN)/pytest tests/integration tests/e2e -m "not soak"

soak: install
	$(BIN)/pytest -m soak

lint: install
	$(BIN)/ruff check events streams cli tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .borderflow .pytest_cache .mypy_cache .ruff_cache

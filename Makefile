# The project's verbs. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: install system-deps demo test test-unit test-integration lint soak dashboards clean

install: $(STAMP)

# Debian's Prometheus (prometheus, promtool) for the rule tests and the end-to-end
# scrape test, and docker-compose to validate docker-compose.yml.
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v docker-compose >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus docker-compose; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/borderflow demo

test: lint system-deps
	$(BIN)/pytest -m "not soak"

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install system-deps
	$(BIN)/pytest tests/integration tests/e2e -m "not soak"

soak: install system-deps
	$(BIN)/pytest -m soak

lint: install
	$(BIN)/ruff check events streams cli tests grafana
	$(BIN)/mypy

# Regenerate grafana/dashboards/*.json from grafana/dashboards.py (a test checks they are current).
dashboards: install
	$(BIN)/python grafana/dashboards.py

clean:
	rm -rf $(VENV) .borderflow .pytest_cache .mypy_cache .ruff_cache

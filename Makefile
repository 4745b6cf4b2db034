# The project's verbs. Each target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SUDO   := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: install system-deps java-deps kafka demo test test-unit test-integration lint soak roll recovery-scale bench dashboards screenshots clean

# Apache Kafka for the integration, e2e and broker-fault tests and the bench: the
# version pinned in apache-kafka/pom.xml, its jars fetched from Maven Central.
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' apache-kafka/pom.xml)
KAFKA_LIBS    := .cache/apache-kafka/$(KAFKA_VERSION)/libs

install: $(STAMP)

# Debian's Prometheus (prometheus, promtool) for the rule tests and the end-to-end
# scrape test, its Alertmanager (prometheus-alertmanager, amtool) for the alert
# delivery tests, docker-compose to validate docker-compose.yml, Chromium for the
# console's browser test and make screenshots (driven by Playwright from PyPI), and
# iproute2, nftables and iptables (its NFQUEUE target feeds the delayer) for the
# network-fault tests' hosts (tests/topology.py), and openssl for the secured
# clusters' certificates (streams/broker/secured.py, apache-kafka/make-certs.sh).
system-deps:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v docker-compose >/dev/null \
	  && command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
	  && command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  && command -v ip >/dev/null && command -v nft >/dev/null && command -v iptables >/dev/null \
	  && command -v openssl >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    prometheus prometheus-alertmanager docker-compose chromium chromium-driver iproute2 nftables iptables openssl; }

# Java 17 (the broker's runtime) and Maven (to fetch its jars), from Debian's packages when missing.
java-deps:
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openjdk-17-jre-headless maven; }

kafka: $(KAFKA_LIBS)/.complete

# Into a scratch folder first, so an interrupted fetch never looks complete.
$(KAFKA_LIBS)/.complete: apache-kafka/pom.xml | java-deps
	rm -rf $(KAFKA_LIBS) $(KAFKA_LIBS).partial
	mvn -q -B -f apache-kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=$(CURDIR)/$(KAFKA_LIBS).partial
	mv $(KAFKA_LIBS).partial $(KAFKA_LIBS)
	touch $@

$(STAMP): pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# setuptools reminds every editable install that folders named like a package shadow it: nothing to act on
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/borderflow demo

test: lint system-deps kafka
	$(BIN)/pytest -m "not soak"

test-unit: install
	$(BIN)/pytest tests/unit

test-integration: install system-deps kafka
	$(BIN)/pytest tests/integration tests/e2e -m "not soak"

soak: install system-deps kafka
	$(BIN)/pytest -m soak

# a rolling restart of three workers on a three-node Apache Kafka cluster, its figures printed (docs/scaling.md)
roll: install system-deps kafka
	$(BIN)/pytest -s tests/e2e/test_rolling_restart.py

# recovery of about 1M window cells and 5M dedup ids: cold, takeover with and without a standby, restart (docs/scaling.md)
recovery-scale: install kafka
	$(BIN)/pytest -s -m soak tests/e2e/test_recovery_at_scale.py

# events/s and peak memory on a fresh Apache Kafka node (borderflow bench --help for the options)
bench: install kafka
	$(BIN)/borderflow bench

lint: install
	$(BIN)/ruff check events streams cli tests grafana deploy
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

# docs/img/console.png from a demo run, in Debian's Chromium
screenshots: install system-deps
	$(BIN)/python -m streams.tools.screenshots docs/img/console.png

# Regenerate grafana/dashboards/*.json from grafana/dashboards.py (a test checks they are current).
dashboards: install
	$(BIN)/python grafana/dashboards.py

clean:
	rm -rf $(VENV) .borderflow .cache .pytest_cache .mypy_cache .ruff_cache

"""docker-compose.yml and the Dockerfile, checked without a Docker engine (docker-compose config)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.broker.apache_kafka import KafkaCluster, kafka_version, shared_properties
from tests.monitoring import binary

ROOT = Path(__file__).resolve().parents[2]


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is missing: run make system-deps (Debian package docker-compose)")
    return subprocess.run(
        [tool, "-f", "docker-compose.yml", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")} | env,
    )


def resolved(**env: str) -> dict[str, Any]:
    result = compose_config({"BORDERFLOW_CLUSTER_TOKEN": "cluster-s3cret", "GRAFANA_ADMIN_PASSWORD": "grafana-s3cret"} | env)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_the_stack_has_kafka_two_workers_simulator_prometheus_alertmanager_and_grafana() -> None:
    services = resolved()["services"]
    assert {"kafka", "worker-1", "worker-2", "simulator", "prometheus", "alertmanager", "grafana"} <= set(services)
    assert services["kafka"]["image"] == f"apache/kafka:{kafka_version()}"  # the release the tests run
    kafka_env = services["kafka"]["environment"]
    assert (
        "CLIENTS://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        and "HOST://localhost:29092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    )
    for name in ("kafka", "worker-1", "worker-2", "prometheus", "alertmanager", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def compose_kafka_properties(service: dict[str, Any]) -> dict[str, str]:
    """What the apache/kafka image starts with: the mounted server.properties, then KAFKA_* variables over it."""
    mounted = [str(v) for v in service["volumes"] if "/mnt/shared/config/server.properties" in str(v)]
    assert mounted and str(ROOT / "apache-kafka" / "server.properties") in mounted[0]
    env = {key[len("KAFKA_") :].lower().replace("_", "."): str(value) for key, value in service["environment"].items()}
    return shared_properties() | env


def test_compose_kafka_runs_with_the_test_clusters_settings() -> None:
    """One source: apache-kafka/server.properties, and the same replication settings as the suite's one-node cluster."""
    compose = compose_kafka_properties(resolved()["services"]["kafka"])
    cluster = KafkaCluster(nodes=1, base_dir=None)
    try:
        tested = cluster.properties(cluster.members[0])
    finally:
        cluster.stop()
    per_node = {"node.id", "controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs"}
    # listeners and their security: compared with the secured test cluster's below
    secured = {"listener.security.protocol.map", "inter.broker.listener.name", "opts"} | {
        k for k in compose if k.startswith(("ssl.", "sasl."))
    }
    assert {k: v for k, v in compose.items() if k not in per_node | secured} == {
        k: v for k, v in tested.items() if k not in per_node | secured
    }
    assert compose["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert compose["inter.broker.listener.name"] in compose["listener.security.protocol.map"]
    assert compose["auto.create.topics.enable"] == "false"


def listener_protocols(properties: dict[str, str]) -> dict[str, str]:
    """Listener name -> security protocol, of every listener a node opens."""
    protocols = dict(pair.split(":") for pair in properties["listener.security.protocol.map"].split(","))
    return {url.split("://")[0]: protocols[url.split("://")[0]] for url in properties["listeners"].split(",")}


def test_compose_kafka_is_secured_as_the_secured_test_cluster_is() -> None:
    """Clients and brokers over TLS, SASL a mechanism the tested cluster takes; plaintext only for the controller, on loopback."""
    compose = compose_kafka_properties(resolved()["services"]["kafka"])
    cluster = KafkaCluster(nodes=1, base_dir=None, secured=True)
    try:
        tested = cluster.properties(cluster.members[0])
    finally:
        cluster.stop()
    for properties in (compose, tested):
        protocols = listener_protocols(properties)
        assert protocols[properties["inter.broker.listener.name"]] in ("SSL", "SASL_SSL")
        clients = [name for name in protocols if name != "CONTROLLER" and name != properties["inter.broker.listener.name"]]
        assert all(protocols[name] in ("SSL", "SASL_SSL") for name in clients)
        assert all(protocol != "PLAINTEXT" for name, protocol in protocols.items() if name != "CONTROLLER")
    compose_protocols = listener_protocols(compose)
    assert set(compose_protocols.values()) == {"SASL_SSL", "PLAINTEXT"}
    assert "CONTROLLER://localhost:" in compose["listeners"]  # the one plaintext listener, on the container's loopback
    assert set(compose["sasl.enabled.mechanisms"].split(",")) <= set(tested["sasl.enabled.mechanisms"].split(","))
    assert compose["ssl.truststore.type"] == tested["ssl.truststore.type"] == "PEM"


def test_the_workers_and_simulator_reach_kafka_over_sasl_ssl_with_file_secrets() -> None:
    config = resolved()
    for name in ("worker-1", "worker-2", "simulator"):
        env = config["services"][name]["environment"]
        assert env["BORDERFLOW_SECURITY_PROTOCOL"] == "SASL_SSL" and env["BORDERFLOW_SASL_MECHANISM"] == "PLAIN"
        assert env["BORDERFLOW_SSL_CAFILE"].startswith("/run/secrets/") and env["BORDERFLOW_SASL_PASSWORD_FILE"].startswith("/run/secrets/")
        assert "BORDERFLOW_SASL_PASSWORD" not in env  # from a file, not the environment
        mounted = {str(secret["source"] if isinstance(secret, dict) else secret) for secret in config["services"][name]["secrets"]}
        assert {Path(env[v]).name for v in ("BORDERFLOW_SSL_CAFILE", "BORDERFLOW_SASL_PASSWORD_FILE")} <= mounted


def test_make_certs_writes_every_secret_compose_names_and_keeps_them(tmp_path: Path) -> None:
    config = resolved()
    secrets = tmp_path / "secrets"
    made = subprocess.run([str(ROOT / "apache-kafka" / "make-certs.sh"), str(secrets)], capture_output=True, text=True, check=False)
    assert made.returncode == 0, made.stderr
    kafka = config["services"]["kafka"]
    env = kafka["environment"]
    assert any(str(ROOT / "secrets") in str(v) and "/etc/kafka/secrets" in str(v) for v in kafka["volumes"])
    needed = [
        env["KAFKA_SSL_KEYSTORE_FILENAME"],
        env["KAFKA_SSL_KEYSTORE_CREDENTIALS"],
        env["KAFKA_SSL_KEY_CREDENTIALS"],
        "client.properties",
    ]
    needed += [Path(env["KAFKA_SSL_TRUSTSTORE_LOCATION"]).name, Path(env["KAFKA_OPTS"].split("=", 1)[1]).name]
    needed += [Path(secret["file"]).name for secret in config["secrets"].values()]
    for name in needed:
        assert (secrets / name).is_file() and (secrets / name).stat().st_size > 0, name
    certificate = subprocess.run(
        ["openssl", "x509", "-in", str(secrets / "kafka.pem"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "DNS:kafka" in certificate.stdout and "DNS:localhost" in certificate.stdout  # the names the listeners advertise
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(secrets / "ca.pem"), str(secrets / "kafka.pem")], capture_output=True, check=False
    )
    assert verified.returncode == 0
    jaas = (secrets / "kafka_server_jaas.conf").read_text()
    for user in ("broker", "worker", "publisher"):
        assert f'user_{user}="{(secrets / f"{user}.password").read_text().strip()}"' in jaas
    before = (secrets / "worker.password").read_text()
    again = subprocess.run([str(ROOT / "apache-kafka" / "make-certs.sh"), str(secrets)], capture_output=True, check=False)
    assert again.returncode == 0 and (secrets / "worker.password").read_text() == before  # a rerun keeps the secrets in use


def test_kafka_s_only_published_listener_is_on_the_host_s_loopback() -> None:
    ports = [str(p) for p in resolved()["services"]["kafka"]["ports"]]
    assert ports and all("127.0.0.1" in p for p in ports), ports


def test_workers_are_built_here_and_reach_kafka_and_each_other() -> None:
    services = resolved()["services"]
    ids = set()
    for name in ("worker-1", "worker-2"):
        worker = services[name]
        assert worker["build"]["context"] == str(ROOT)
        env = worker["environment"]
        assert env["BORDERFLOW_KAFKA"] == "kafka:9092"
        assert env["BORDERFLOW_ADVERTISED_URL"] == f"http://{name}:6066"  # peers gather answers from each other
        assert worker["depends_on"]["kafka"]["condition"] == "service_healthy"
        ids.add(env["BORDERFLOW_WORKER_ID"])
    assert len(ids) == 2
    simulator = services["simulator"]
    assert simulator["command"][0] == "simulate"
    assert {dep["condition"] for dep in simulator["depends_on"].values()} == {"service_healthy"}


def test_ingest_token_passes_through_and_defaults_to_ingest_disabled() -> None:
    assert resolved()["services"]["worker-1"]["environment"]["BORDERFLOW_INGEST_TOKEN"] == ""
    assert resolved(BORDERFLOW_INGEST_TOKEN="s3cret")["services"]["worker-2"]["environment"]["BORDERFLOW_INGEST_TOKEN"] == "s3cret"


def test_the_workers_share_a_cluster_token_that_must_be_set() -> None:
    refused = compose_config({})
    assert refused.returncode != 0 and "BORDERFLOW_CLUSTER_TOKEN" in refused.stderr
    services = resolved()["services"]
    assert {services[w]["environment"]["BORDERFLOW_CLUSTER_TOKEN"] for w in ("worker-1", "worker-2")} == {"cluster-s3cret"}


def test_nothing_unauthenticated_is_published_beyond_loopback_and_grafana_needs_a_password() -> None:
    services = resolved()["services"]
    for name in ("kafka", "prometheus", "alertmanager", "grafana"):
        ports = [str(p) for p in services[name]["ports"]]
        assert ports and all("127.0.0.1" in p for p in ports), (name, ports)
    assert not any("lifecycle" in str(arg) for arg in services["prometheus"]["command"])
    assert services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "grafana-s3cret"
    refused = compose_config({"BORDERFLOW_CLUSTER_TOKEN": "x"})
    assert refused.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in refused.stderr


def test_prometheus_and_grafana_mount_this_repository_s_config() -> None:
    services = resolved()["services"]
    mounts = [str(v) for s in ("prometheus", "grafana") for v in services[s]["volumes"]]
    for source in ("prometheus", "grafana/provisioning", "grafana/dashboards"):
        assert any(str(ROOT / source) in m for m in mounts), source
        assert (ROOT / source).is_dir()
    targets = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["worker-1:6066", "worker-2:6066"]
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"


def test_alertmanager_runs_this_repository_s_config_and_prometheus_sends_to_it() -> None:
    alertmanager = resolved()["services"]["alertmanager"]
    assert any(str(ROOT / "alertmanager") in str(v) and "/etc/alertmanager" in str(v) for v in alertmanager["volumes"])
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert "--cluster.listen-address=" in alertmanager["command"]  # no gossip port open
    version = alertmanager["image"].rpartition(":v")[2]
    tool = binary("prometheus-alertmanager", "prometheus-alertmanager")
    tested = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30, check=False)
    assert f"version {version}" in tested.stdout + tested.stderr, "the image runs the release the e2e test delivers with"
    sent_to = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())["alerting"]["alertmanagers"][0]["static_configs"][0]
    assert sent_to["targets"] == ["alertmanager:9093"]


def test_dockerfile_copies_what_exists_and_runs_the_worker() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", text, flags=re.M):
        for item in source.split():
            assert (ROOT / item).exists(), item
    assert 'ENTRYPOINT ["borderflow"]' in text and 'CMD ["worker"]' in text
    assert "/health" in text

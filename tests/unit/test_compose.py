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
        "PLAINTEXT://kafka:9092" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
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
    per_node = {"node.id", "controller.quorum.voters", "listeners", "advertised.listeners", "log.dirs", "listener.security.protocol.map"}
    assert {k: v for k, v in compose.items() if k not in per_node} == {k: v for k, v in tested.items() if k not in per_node}
    assert compose["process.roles"] == "broker,controller"  # KRaft, no ZooKeeper
    assert compose["inter.broker.listener.name"] in compose["listener.security.protocol.map"]
    assert compose["auto.create.topics.enable"] == "false"


def test_kafka_s_plaintext_listener_is_published_on_the_host_s_loopback_only() -> None:
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


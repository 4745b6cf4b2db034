from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import noida_db
import pytest

from streams.broker.apache_kafka import KafkaCluster, kafka_version
from streams.broker.embedded import EmbeddedBroker, free_port
from tests.factories import WorkerProcess
from tests.support import unique

#: which broker each part of the run used, for the report at the end
BROKERS_USED: dict[str, str] = {}


def pytest_report_header(config: pytest.Config) -> list[str]:
    given = os.environ.get("BORDERFLOW_KAFKA")
    main = f"the cluster at BORDERFLOW_KAFKA={given}" if given else f"Apache Kafka {kafka_version()} (KRaft, one node started by the suite)"
    return [
        f"brokers: integration and e2e tests on {main}; broker-fault tests on a three-node Apache Kafka {kafka_version()} cluster;",
        f"         the embedded broker's own tests (its CLI, its defects, the demo) on noida-db {noida_db_version()}",
    ]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if BROKERS_USED:
        terminalreporter.section("brokers used")
        for part, broker in BROKERS_USED.items():
            terminalreporter.write_line(f"{part}: {broker}")


def noida_db_version() -> str:
    from importlib.metadata import version

    return version(noida_db.__name__.replace("_", "-"))


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker of the integration and e2e tests: BORDERFLOW_KAFKA if given, else one Apache Kafka node for the session."""
    given = os.environ.get("BORDERFLOW_KAFKA")
    if given:
        BROKERS_USED["integration and e2e"] = f"BORDERFLOW_KAFKA={given}"
        yield given
        return
    cluster = KafkaCluster(nodes=1, base_dir=tmp_path_factory.mktemp("kafka")).start()
    BROKERS_USED["integration and e2e"] = f"Apache Kafka {cluster.version}, one KRaft node at {cluster.bootstrap}"
    try:
        yield cluster.bootstrap
    finally:
        cluster.stop()


@pytest.fixture
def kafka_cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """Three Apache Kafka nodes (each broker and controller) of this test's own, to kill and restart."""
    cluster = KafkaCluster(nodes=3, base_dir=tmp_path / "kafka").start()
    BROKERS_USED["broker faults"] = f"Apache Kafka {cluster.version}, three KRaft nodes started per test"
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One secured Apache Kafka node (SASL_SSL and mutual-TLS listeners, ACLs enforced) for the session."""
    cluster = KafkaCluster(nodes=1, secured=True, base_dir=tmp_path_factory.mktemp("secured-kafka")).start()
    BROKERS_USED["secured Kafka"] = (
        f"Apache Kafka {cluster.version}, one secured KRaft node: SASL_SSL at {cluster.bootstrap}, mTLS at {cluster.tls_bootstrap}"
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def secured_kafka_cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """Three secured Apache Kafka nodes of this test's own."""
    cluster = KafkaCluster(nodes=3, secured=True, base_dir=tmp_path / "kafka").start()
    BROKERS_USED["secured cluster"] = f"Apache Kafka {cluster.version}, three secured KRaft nodes started per test"
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def embedded_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The embedded broker (noida-db), for the tests of the embedded broker itself."""
    broker = EmbeddedBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("embedded-broker"))
    broker.start()
    BROKERS_USED["embedded broker tests"] = f"noida-db {noida_db_version()} at {broker.bootstrap}"
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def deployment(kafka: str, tmp_path: Path) -> dict[str, str]:
    """Environment for one isolated deployment: its own topics, app id and state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    env.update(
        BORDERFLOW_KAFKA=kafka,
        BORDERFLOW_APP_ID=unique("app"),
        BORDERFLOW_TOPIC_PREFIX=unique("t") + ".",
        BORDERFLOW_PARTITIONS="4",
        BORDERFLOW_LOG_LEVEL="INFO",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


@pytest.fixture
def spawn_worker(deployment: dict[str, str], tmp_path: Path) -> Iterator[object]:
    workers: list[WorkerProcess] = []

    def spawn(name: str = "w1", port: int | None = None, command: tuple[str, ...] | None = None, **extra: str) -> WorkerProcess:
        port = port or free_port()
        env = dict(deployment, BORDERFLOW_WEB_PORT=str(port), BORDERFLOW_DATA_DIR=str(tmp_path / name)) | extra
        worker = WorkerProcess(env=env, port=port, log=tmp_path / f"{name}.log", **({"command": command} if command else {})).start()
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.stop()

"""Apache Kafka in KRaft mode, run as plain JVM processes on loopback: one node or a cluster.

The jars come from Maven Central (``apache-kafka/pom.xml``, fetched by
``make kafka`` into ``.cache/apache-kafka/<version>/libs``); the settings
every cluster shares are ``apache-kafka/server.properties``. Each node is a
combined broker and controller with its own data directory and two free
ports (client and controller listeners). The cluster is formatted once with
one cluster id; a node that is killed or stopped can be started again on the
same ports and data.

A secured cluster (``secured=True``) has no plaintext listener: its clients
connect over SASL_SSL (:attr:`KafkaCluster.bootstrap`, SCRAM-SHA-512,
SCRAM-SHA-256 or PLAIN) or mutual TLS (:attr:`KafkaCluster.tls_bootstrap`),
its brokers and controllers to each other over mutual TLS as the only super
user, and ``StandardAuthorizer`` allows a client only what an ACL grants
(streams/broker/secured.py).

Every node runs in its own process group and gets SIGTERM if the process that
started it dies, so no JVM outlives a killed test run or bench.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.broker.embedded import free_port, own_session_and_die_with_parent, port_open
from streams.broker.secured import Security, create_acls
from streams.kafka.acls import Acl

PROJECT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT / "apache-kafka"
#: JVM heap of each node: the brokers here hold little, and three share the machine with the workers
DEFAULT_HEAP_MB = 512


def kafka_version() -> str:
    """The pinned Apache Kafka version, read from ``apache-kafka/pom.xml``."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", (CONFIG_DIR / "pom.xml").read_text())
    if found is None:
        raise RuntimeError(f"{CONFIG_DIR / 'pom.xml'} names no kafka.version")
    return found.group(1).strip()


def kafka_libs(fetch: bool = True) -> Path:
    """The folder of the broker's jars: ``BORDERFLOW_KAFKA_LIBS``, or the project's cache, fetched with Maven if missing."""
    given = os.environ.get("BORDERFLOW_KAFKA_LIBS")
    libs = Path(given) if given else PROJECT / ".cache" / "apache-kafka" / kafka_version() / "libs"
    if any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if given or not fetch:
        raise FileNotFoundError(f"no Apache Kafka jars in {libs}: run 'make kafka'")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FileNotFoundError("fetching Apache Kafka needs Maven: run 'make kafka' (installs Java and Maven with apt-get)")
    partial = libs.with_name(libs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "-f",
            str(CONFIG_DIR / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    partial.rename(libs)  # whole or not at all: an interrupted fetch leaves no half folder behind
    (libs / ".complete").touch()  # as make kafka leaves it
    return libs


def java() -> str:
    """The ``java`` of ``JAVA_HOME``, else the one on the path."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if found is None:
        raise FileNotFoundError("Apache Kafka needs Java 17 or later: run 'make kafka' (installs it with apt-get)")
    return found


def shared_properties() -> dict[str, str]:
    """``apache-kafka/server.properties`` as a mapping."""
    out = {}
    for raw in (CONFIG_DIR / "server.properties").read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def replication_properties(nodes: int) -> dict[str, str]:
    """What follows from the cluster's size: three replicas, two in sync, on a cluster of three or more."""
    replicas = min(3, nodes)
    in_sync = min(2, replicas)
    return {
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(in_sync),
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(in_sync),
    }


class KafkaNotReady(RuntimeError):
    pass


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    #: the address it listens on and advertises
    host: str = "127.0.0.1"
    #: what its JVM is started under (a network namespace's ``ip netns exec``), if anything
    wrapper: tuple[str, ...] = ()
    #: on a secured cluster: the mutual-TLS client listener's port, and the brokers' own listener's
    tls_port: int | None = None
    internal_port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()


def new_cluster_id() -> str:
    """A random cluster id as Kafka writes them (``Uuid.randomUuid``): URL-safe base64 of 16 bytes.

    One that starts with ``-`` would be read as an option by ``kafka-storage
    format -t``; Kafka draws again in that case, and so does this.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass
class KafkaCluster:
    """``nodes`` combined broker+controller nodes of Apache Kafka, on 127.0.0.1 unless ``hosts`` are given.

    ``base_dir`` holds each node's data, config and log; a temporary one is
    made (and removed by :meth:`stop`) when none is given.
    """

    nodes: int = 1
    base_dir: Path | None = None
    heap_mb: int = DEFAULT_HEAP_MB
    overrides: dict[str, str] = field(default_factory=dict)
    #: per node, the address it listens on (default: 127.0.0.1 for all) and what its JVM runs under
    hosts: list[str] | None = None
    wrappers: list[tuple[str, ...]] | None = None
    #: TLS and SASL on every listener, ACLs enforced (see the module's docstring)
    secured: bool = False
    members: list[KafkaNode] = field(init=False, default_factory=list)
    security: Security | None = field(init=False, default=None)
    _own_dir: bool = field(init=False, default=False)
    _formatted: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if self.base_dir is None:
            self.base_dir = Path(tempfile.mkdtemp(prefix="borderflow-kafka-"))
            self._own_dir = True
        self.base_dir.mkdir(parents=True, exist_ok=True)
        per_node = 4 if self.secured else 2
        ports = _free_ports(per_node * self.nodes)
        self.members = [
            KafkaNode(
                node_id=i + 1,
                port=ports[per_node * i],
                controller_port=ports[per_node * i + 1],
                data_dir=self.base_dir / f"node-{i + 1}" / "data",
                log=self.base_dir / f"node-{i + 1}" / "kafka.log",
                host=self.hosts[i] if self.hosts else "127.0.0.1",
                wrapper=self.wrappers[i] if self.wrappers else (),
                tls_port=ports[per_node * i + 2] if self.secured else None,
                internal_port=ports[per_node * i + 3] if self.secured else None,
            )
            for i in range(self.nodes)
        ]
        if self.secured:
            self.security = Security(self.base_dir / "security", [node.host for node in self.members])

    @property
    def version(self) -> str:
        return kafka_version()

    @property
    def bootstrap(self) -> str:
        """The client listeners: plaintext, or SASL_SSL on a secured cluster."""
        return ",".join(node.address for node in self.members)

    @property
    def tls_bootstrap(self) -> str:
        """A secured cluster's mutual-TLS client listeners."""
        return ",".join(f"{node.host}:{node.tls_port}" for node in self.members if node.tls_port is not None)

    def admin_options(self) -> dict[str, object]:
        """aiokafka settings of the helper's own clients: plaintext, or as the brokers' principal on a secured cluster."""
        if self.security is None:
            return {"bootstrap_servers": self.bootstrap}
        return self.security.broker_client_options(",".join(f"{node.host}:{node.internal_port}" for node in self.members))

    def grant(self, acls: list[Acl]) -> None:
        """Create ``acls`` on a secured cluster."""
        asyncio.run(create_acls(self.admin_options(), acls))

    def node(self, node_id: int) -> KafkaNode:
        return self.members[node_id - 1]

    def properties(self, node: KafkaNode) -> dict[str, str]:
        """Everything one node is started with."""
        voters = ",".join(f"{n.node_id}@{n.host}:{n.controller_port}" for n in self.members)
        if self.security is None:
            listeners = {
                "listeners": f"PLAINTEXT://{node.host}:{node.port},CONTROLLER://{node.host}:{node.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{node.address}",
            }
        else:
            clients = f"SASL_CLIENTS://{node.address},TLS_CLIENTS://{node.host}:{node.tls_port},BROKERS://{node.host}:{node.internal_port}"
            listeners = {
                "listeners": f"{clients},CONTROLLER://{node.host}:{node.controller_port}",
                "advertised.listeners": clients,
            } | self.security.listener_properties("SASL_CLIENTS", "TLS_CLIENTS", "BROKERS")
        return (
            shared_properties()
            | replication_properties(self.nodes)
            | {"node.id": str(node.node_id), "controller.quorum.voters": voters, "log.dirs": str(node.data_dir)}
            | listeners
            | self.overrides
        )

    def start(self, timeout: float = 90.0) -> KafkaCluster:
        """Format the storage (first start only), start every node, and wait until all serve."""
        libs = kafka_libs()
        if not self._formatted:
            cluster_id = new_cluster_id()
            for node in self.members:
                self._format(libs, node, cluster_id)
            self._formatted = True
        for node in self.members:
            self._launch(libs, node)
        try:
            self.wait_serving(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_node(self, node_id: int, timeout: float = 60.0) -> None:
        """Start again a node that was killed or stopped, on its ports and data, and wait until it is a broker again."""
        node = self.node(node_id)
        if node.running:
            raise RuntimeError(f"node {node_id} is running")
        self._launch(kafka_libs(), node)
        self.wait_serving(timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, no leadership handed over."""
        node = self.node(node_id)
        node.signal(signal.SIGKILL)
        node.wait(30)

    def stop_node(self, node_id: int, timeout: float = 60.0) -> None:
        """SIGTERM one node: a controlled shutdown, leaderships moved first."""
        node = self.node(node_id)
        node.signal(signal.SIGTERM)
        node.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node (SIGTERM, SIGKILL after ``timeout``); remove the data if the directory was ours."""
        for node in self.members:
            node.signal(signal.SIGTERM)
        for node in self.members:
            node.wait(timeout)
        if self._own_dir and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def wait_serving(self, timeout: float) -> None:
        """Until every running node answers metadata with every running node in it, and a topic can be created."""
        deadline = time.monotonic() + timeout
        expected = {n.node_id for n in self.members if n.running}
        last: object = None
        while time.monotonic() < deadline:
            for node in self.members:
                if node.process is not None and node.process.poll() is not None and node.node_id in expected:
                    raise KafkaNotReady(f"Kafka node {node.node_id} exited with {node.process.returncode}:\n{self.tail(node.node_id)}")
            if all(port_open(self.node(i).host, self.node(i).port) for i in expected):
                try:
                    if asyncio.run(_serving(self.admin_options(), expected)):
                        return
                except Exception as exc:  # noqa: BLE001 - not up yet; retried until the deadline
                    last = exc
            time.sleep(0.3)
        raise KafkaNotReady(f"Kafka nodes {sorted(expected)} not serving within {timeout:.0f}s ({last!r})")

    def leader_of(self, topic: str, partition: int) -> int:
        """The node that leads ``topic``'s ``partition`` now."""
        return asyncio.run(_leader(self.admin_options(), topic, partition))

    def active_controller(self) -> int:
        """The node that is the KRaft quorum's leader, from the quorum state the running nodes keep on disk."""
        best: tuple[int, int] | None = None
        for node in self.members:
            if not node.running:
                continue
            state = node.data_dir / "__cluster_metadata-0" / "quorum-state"
            try:
                data = json.loads(state.read_text())
            except (OSError, ValueError):
                continue
            leader, epoch = int(data.get("leaderId", -1)), int(data.get("leaderEpoch", -1))
            if leader > 0 and (best is None or epoch > best[1]):
                best = (leader, epoch)
        if best is None:
            raise KafkaNotReady("no running node knows the quorum's leader")
        return best[0]

    def tail(self, node_id: int, lines: int = 30) -> str:
        log = self.node(node_id).log
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def _format(self, libs: Path, node: KafkaNode, cluster_id: str) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_config(node)
        users = self.security.scram_arguments() if self.security is not None else []
        done = subprocess.run(
            [java(), *self._jvm(libs, 256), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), *users],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if done.returncode != 0:
            raise KafkaNotReady(f"formatting Kafka node {node.node_id} failed:\n{done.stdout.decode()}{done.stderr.decode()}")

    def _launch(self, libs: Path, node: KafkaNode) -> None:
        config = self._write_config(node)
        with node.log.open("ab") as out:
            node.process = subprocess.Popen(
                [*node.wrapper, java(), *self._jvm(libs, self.heap_mb), "kafka.Kafka", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=own_session_and_die_with_parent,  # noqa: PLW1509 - async-signal-safe calls only
            )

    def _write_config(self, node: KafkaNode) -> Path:
        path = node.log.with_name("server.properties")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in self.properties(node).items()))
        return path

    @staticmethod
    def _jvm(libs: Path, heap_mb: int) -> list[str]:
        return [
            f"-Xms{heap_mb // 2}m",
            f"-Xmx{heap_mb}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={CONFIG_DIR / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
        ]


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


async def _serving(options: dict[str, object], expected: set[int]) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(request_timeout_ms=5000, **options)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        return {int(broker["node_id"]) for broker in cluster["brokers"]} >= expected
    finally:
        await admin.close()


async def _leader(options: dict[str, object], topic: str, partition: int) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(request_timeout_ms=5000, **options)
    await admin.start()
    try:
        for described in await admin.describe_topics([topic]):
            for part in described.get("partitions", []):
                if part["partition"] == partition:
                    return int(part["leader"])
    finally:
        await admin.close()
    raise KafkaNotReady(f"{topic}[{partition}] has no leader")

"""The embedded broker's defects, shown with bare aiokafka clients, next to Apache Kafka, which does not have them.

Each test runs on both brokers: on the embedded broker (noida-db) it shows the
defect, on Apache Kafka that the workaround is not needed there. The
workarounds (``streams/defects.py``) are exercised by the worker tests:
``test_crash_recovery.py`` (static membership: a SIGKILLed worker restarted
next to a peer) and ``test_two_workers.py`` (eviction of a dead worker).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import DescribeGroupsRequest

from streams.broker.apache_kafka import KafkaCluster
from streams.broker.embedded import EmbeddedBroker, free_port
from streams.kafka.admin import create_topic
from tests.support import unique

pytestmark = pytest.mark.e2e
MEMBER = Path(__file__).with_name("group_member.py")


class Member:
    def __init__(self, kafka: str, topic: str, group: str, log: Path, instance: str | None = None) -> None:
        self.log = log
        args = [sys.executable, str(MEMBER), kafka, topic, group] + ([instance] if instance else [])
        self.process = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.DEVNULL)

    def assignment(self) -> str | None:
        lines = self.log.read_text().splitlines()
        return lines[-1] if lines else None

    def wait_for(self, *expected: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.assignment() in expected:
                return True
            time.sleep(0.5)
        return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture(params=["embedded", "kafka"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, bootstrap): the embedded broker, then Apache Kafka (or BORDERFLOW_KAFKA)."""
    kind = str(request.param)
    return kind, request.getfixturevalue("embedded_kafka" if kind == "embedded" else "kafka")


@pytest.fixture
def topic(broker: tuple[str, str]) -> str:
    name = unique("group-defect")

    asyncio.run(create_topic(broker[1], name, 4))
    return name


@pytest.fixture
def kafka_cluster_of_one(tmp_path: Path) -> Iterator[KafkaCluster]:
    """An Apache Kafka node of this test's own, whose data directory it reads."""
    cluster = KafkaCluster(nodes=1, base_dir=tmp_path / "kafka").start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def group_members(kafka: str, group: str) -> list[str]:
    client = AIOKafkaClient(bootstrap_servers=kafka)
    await client.bootstrap()
    try:
        node = await client.coordinator_lookup(0, group)
        response = await client.send(node, DescribeGroupsRequest([group]))
        return [member[0] for g in response.groups for member in g[5]]
    finally:
        await client.close()


def test_defect_killed_member_stays_in_the_group_past_its_session(broker: tuple[str, str], topic: str, tmp_path: Path) -> None:
    """Workaround: DeadMemberEvictor, on the embedded broker only."""
    kind, kafka = broker
    group = unique("g")
    survivor = Member(kafka, topic, group, tmp_path / "survivor.log")
    victim = None
    try:
        assert survivor.wait_for("0,1,2,3", timeout=30)
        victim = Member(kafka, topic, group, tmp_path / "victim.log")
        deadline = time.monotonic() + 30
        while len(asyncio.run(group_members(kafka, group))) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(asyncio.run(group_members(kafka, group))) == 2
        if kind == "kafka":
            assert survivor.wait_for("0,1", "2,3", "0,2", "1,3", "0,3", "1,2", timeout=30), survivor.assignment()
        victim.kill()
        if kind == "embedded":
            time.sleep(10 + 15)  # session timeout 10 s, and then some
            # noida-db keeps the dead member (and any phantom ids)
            assert len(asyncio.run(group_members(kafka, group))) >= 2, "the defect is gone: the dead member was evicted"
        else:
            # Apache Kafka expires it after its session timeout and gives the survivor every partition
            killed = time.monotonic()
            assert survivor.wait_for("0,1,2,3", timeout=10 + 15), survivor.assignment()
            assert len(asyncio.run(group_members(kafka, group))) == 1
            print(f"Apache Kafka gave the survivor every partition {time.monotonic() - killed:.1f} s after the SIGKILL")
    finally:
        for member in (survivor, victim):
            if member is not None and member.process.poll() is None:
                member.kill()


def test_defect_a_fetch_returns_the_whole_partition_whatever_its_size_limit(broker: tuple[str, str]) -> None:
    """Workaround: compressed batches (BORDERFLOW_COMPRESSION), which aiokafka keeps compressed until read."""
    kind, kafka = broker
    name = unique("fetch-defect")
    records, limit = 20_000, 64 * 1024

    async def run() -> int:
        await create_topic(kafka, name, 1)
        producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=20)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(name, b"x" * 200) for _ in range(records)])
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka, max_partition_fetch_bytes=limit, fetch_max_bytes=limit, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            consumer.assign([TopicPartition(name, 0)])
            fetched = await consumer.getmany(timeout_ms=10_000, max_records=records)
            return sum(len(batch) for batch in fetched.values())
        finally:
            await consumer.stop()

    first_fetch = asyncio.run(run())
    if kind == "embedded":
        # noida-db answers with all 4 MB of them
        assert first_fetch * 200 > 10 * limit, f"the defect is gone: the first fetch held {first_fetch} records"
    else:
        # Apache Kafka with about 64 KiB (a record batch may take it a little past the limit)
        assert 0 < first_fetch * 200 <= 2 * limit, f"a first fetch of {first_fetch} records over a {limit}-byte limit"


def test_apache_kafka_appends_a_one_byte_write_to_its_segment(kafka_cluster_of_one: KafkaCluster) -> None:
    """Why bench waits for a quiet broker only on the embedded broker: Apache Kafka's segments grow by what is written."""
    cluster = kafka_cluster_of_one
    bulk, tiny = unique("bulk"), unique("tiny")

    async def produce(topic: str, values: list[bytes]) -> None:
        await create_topic(cluster.bootstrap, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, linger_ms=20)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(topic, value) for value in values])
        finally:
            await producer.stop()

    data = cluster.node(1).data_dir
    asyncio.run(produce(bulk, [os.urandom(1000) for _ in range(2000)]))
    bulk_segment = next((data / f"{bulk}-0").glob("*.log"))
    before = bulk_segment.stat()
    asyncio.run(produce(tiny, [b"x"]))
    time.sleep(1)
    after = bulk_segment.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert 0 < next((data / f"{tiny}-0").glob("*.log")).stat().st_size < 200


def test_defect_a_one_byte_write_rewrites_the_whole_store(tmp_path: Path) -> None:
    """Workaround: bench measures each contestant on a quiet broker (EmbeddedBroker.wait_quiet)."""
    broker = EmbeddedBroker(port=free_port(), data_dir=tmp_path / "broker")
    broker.start()
    store = tmp_path / "broker" / "kafka.json"

    async def produce(topic: str, values: list[bytes]) -> None:
        await create_topic(broker.bootstrap, topic, 1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(topic, value) for value in values])
        finally:
            await producer.stop()

    try:
        asyncio.run(produce(unique("bulk"), [os.urandom(1000) for _ in range(2000)]))  # 2 MB that does not compress
        assert broker.wait_quiet(timeout=60)
        before = store.stat()
        asyncio.run(produce(unique("tiny"), [b"x"]))
        deadline = time.monotonic() + 60
        while store.stat().st_ino == before.st_ino and time.monotonic() < deadline:
            time.sleep(0.1)
        assert broker.wait_quiet(timeout=60)
        after = store.stat()
    finally:
        broker.stop()
    # An appending log would have added a few bytes to a segment; noida-db wrote a new file holding everything.
    assert after.st_ino != before.st_ino, "the defect is gone: the store was not replaced after a one-byte write"
    assert before.st_size > 2 * 2_000_000 and after.st_size >= before.st_size

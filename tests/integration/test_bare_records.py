"""Bare records: the input topics' records as aiokafka's batch reader makes them, without a ConsumerRecord each."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.structs import ConsumerRecord

from streams.engine.seam import consumer_record, read_bare
from streams.kafka.admin import create_topic
from tests.support import unique

pytestmark = pytest.mark.integration
RECORDS = 300


async def publish(kafka: str, name: str) -> None:
    await create_topic(kafka, name, 1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, compression_type="zstd", linger_ms=20)
    await producer.start()
    try:
        sent = []
        for i in range(RECORDS):
            key = None if i % 7 == 0 else f"k{i}".encode()
            headers = [("h", str(i).encode())] if i % 3 == 0 else None
            sent.append(await producer.send(name, f'{{"n":{i}}}'.encode(), key=key, headers=headers))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def read_all(kafka: str, name: str) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(name, 0)
        consumer.assign([tp])
        out: list[Any] = []
        for _ in range(50):
            for records in (await consumer.getmany(tp, timeout_ms=500, max_records=100)).values():
                out.extend(records)  # max_records cuts fetches mid-batch: the reader must resume where it stopped
            if len(out) >= RECORDS:
                break
        return out
    finally:
        await consumer.stop()


def test_bare_records_carry_what_aiokafka_would_have_put_in_its_consumer_records(kafka: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bare_topic, other_topic = unique("bare"), unique("not-bare")
    asyncio.run(publish(kafka, bare_topic))
    asyncio.run(publish(kafka, other_topic))
    standard = asyncio.run(read_all(kafka, bare_topic))

    monkeypatch.setattr(aiokafka_fetcher, "PartitionRecords", aiokafka_fetcher.PartitionRecords)  # restored after the test
    read_bare([bare_topic])
    bare = asyncio.run(read_all(kafka, bare_topic))
    other = asyncio.run(read_all(kafka, other_topic))

    assert len(standard) == len(bare) == len(other) == RECORDS
    assert not any(isinstance(record, ConsumerRecord) for record in bare)
    assert all(isinstance(record, ConsumerRecord) for record in other)
    tp = TopicPartition(bare_topic, 0)
    assert [consumer_record(tp, record) for record in bare] == standard
    assert [record.offset for record in bare] == list(range(RECORDS))

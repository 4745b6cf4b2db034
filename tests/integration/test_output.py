"""DirectOutput: record batches into the producer, in order, to the partition asked, delivery reported or refused."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.engine.codec import Record
from streams.engine.output import DirectOutput, OutputFailed
from streams.engine.seam import BuiltBatch
from streams.kafka.admin import create_topic
from tests.support import unique

pytestmark = pytest.mark.integration


async def read_partition(kafka: str, name: str, partition: int, expected: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(name, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[tuple[bytes | None, bytes | None]] = []
        for _ in range(50):
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                out.extend((r.key, r.value) for r in records)
            if len(out) >= expected:
                break
        return out
    finally:
        await consumer.stop()


def test_records_arrive_in_order_in_the_partition_asked_and_delivery_reports_the_last_offset(kafka: str) -> None:
    name = unique("output")

    async def run() -> tuple[list[int], list[tuple[bytes | None, bytes | None]], list[tuple[bytes | None, bytes | None]]]:
        await create_topic(kafka, name, 3)
        producer = AIOKafkaProducer(bootstrap_servers=kafka, compression_type="zstd", max_batch_size=64 * 1024)
        await producer.start()
        delivered: list[int] = []
        try:
            output = DirectOutput(lambda: producer)
            big = [(f"k{i}".encode(), b"v" * 100 + str(i).encode(), []) for i in range(3000)]  # several record batches
            await output.send(name, 1, big, exact=True, on_delivered=delivered.append)
            await output.send(name, 4, [(b"wrapped", b"4 % 3 = 1", [("h", b"x")])])  # not exact: modulo the partition count
            await producer.flush()
            output.check()
        finally:
            await producer.stop()
        return delivered, await read_partition(kafka, name, 1, 3001), await read_partition(kafka, name, 0, 0)

    delivered, partition_1, partition_0 = asyncio.run(run())
    assert partition_1 == [(f"k{i}".encode(), b"v" * 100 + str(i).encode()) for i in range(3000)] + [(b"wrapped", b"4 % 3 = 1")]
    assert partition_0 == []
    assert delivered == [2999]  # the offset of the last record of the send


def test_an_exact_partition_that_does_not_exist_is_refused_before_anything_is_sent(kafka: str) -> None:
    name = unique("output")

    async def run() -> None:
        await create_topic(kafka, name, 2)
        producer = AIOKafkaProducer(bootstrap_servers=kafka)
        await producer.start()
        try:
            with pytest.raises(OutputFailed, match="no partition 5"):
                await DirectOutput(lambda: producer).send(name, 5, [(b"k", b"v", [])], exact=True)
        finally:
            await producer.stop()

    asyncio.run(run())


def test_a_failed_delivery_refuses_every_later_send_and_check() -> None:
    async def run() -> None:
        output = DirectOutput(lambda: None)
        delivery: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        output._watch(delivery, None, 1)
        output.check()  # nothing failed yet
        delivery.set_exception(ConnectionError("broker gone"))
        await asyncio.sleep(0)  # done callbacks run on the loop
        with pytest.raises(OutputFailed, match="broker gone"):
            output.check()
        with pytest.raises(OutputFailed):
            await output.send("any", 0, [(b"k", b"v", [])])

    asyncio.run(run())


def test_records_built_off_the_event_loop_arrive_in_call_order_with_their_headers_and_timestamps(kafka: str) -> None:
    """send_soon: made and compressed in the output's thread, queued in order, on an idempotent producer like the worker's."""
    name = unique("output")
    first_stamp = 1_700_000_000_000

    def made(start: int, count: int) -> tuple[list[Record], list[int | None]]:
        records: list[Record] = [
            (f"k{i}".encode(), b"v" * 100 + str(i).encode(), [("n", str(i).encode())]) for i in range(start, start + count)
        ]
        return records, [first_stamp + i for i in range(start, start + count)]

    async def run() -> list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]]:
        await create_topic(kafka, name, 2)
        producer = AIOKafkaProducer(bootstrap_servers=kafka, compression_type="zstd", max_batch_size=64 * 1024, enable_idempotence=True)
        await producer.start()
        try:
            output = DirectOutput(lambda: producer, BuiltBatch)
            for start in range(0, 12_000, 1_000):  # more calls than MAX_QUEUED_OFF_LOOP, several record batches each
                await output.send_soon(name, 1, partial(made, start, 1_000))
            await output.send_soon(name, 1, lambda: ([], []))
            await output.queued()
            await producer.flush()
            output.check()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(name, 1)
            consumer.assign([tp])
            out: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]] = []
            for _ in range(100):
                for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                    out.extend((r.key, r.value, list(r.headers), r.timestamp) for r in records)
                if len(out) >= 12_000:
                    break
            return out
        finally:
            await consumer.stop()

    received = asyncio.run(run())
    expected = made(0, 12_000)
    assert received == [(key, value, headers, stamp) for (key, value, headers), stamp in zip(*expected, strict=True)]


def test_records_that_cannot_be_made_off_the_event_loop_refuse_the_next_commit() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()

        class Producer:
            async def partitions_for(self, topic: str) -> set[int]:
                return {0}

            def create_batch(self) -> object:
                raise AssertionError("not reached: the records were never made")

        def unmakeable() -> tuple[list[Record], list[int | None]]:
            raise ValueError("no such original")

        output = DirectOutput(Producer, BuiltBatch)
        await output.send_soon("any", 0, unmakeable)
        await output.queued()
        assert loop.is_running()
        with pytest.raises(OutputFailed, match="no such original"):
            output.check()

    asyncio.run(run())

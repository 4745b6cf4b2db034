"""Event-loop CPU per forwarded copy: ``python -m streams.tools.forward_cost [--kafka HOST:PORT]``.

Sends the copies of 200,000 bench crossings (each with its origin header, in
calls of 5,000 to one of 4 partitions, as the worker forwards a batch) through
:meth:`DirectOutput.send`, which fills and compresses the record batches on
the event loop, and through :meth:`DirectOutput.send_soon`, which does it in
the output's thread; three alternated rounds, on a producer set as the
worker's (zstd, 1 MiB batches, linger 5 ms, idempotent). Prints the CPU time
of the event loop's thread and of the whole process, per copy, from the first
send until every batch is delivered. Without ``--kafka`` it starts one Apache
Kafka node.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from functools import partial

from aiokafka import AIOKafkaProducer

from streams.broker.apache_kafka import KafkaCluster
from streams.engine.output import DirectOutput, Record
from streams.engine.seam import BuiltBatch
from streams.kafka.admin import create_topic
from streams.tools.bench import bench_events

COPIES = 200_000
PER_CALL = 5_000
PARTITIONS = 4


def copies(originals: list[tuple[bytes, bytes, int]], offsets: range) -> tuple[list[Record], list[int | None]]:
    records: list[Record] = []
    stamps: list[int | None] = []
    for offset in offsets:
        key, value, timestamp = originals[offset]
        records.append((key, value, [("borderflow-forwarded-from", f"crossings|0|{offset}".encode())]))
        stamps.append(timestamp)
    return records, stamps


async def forward_all(kafka: str, originals: list[tuple[bytes, bytes, int]], off_loop: bool) -> tuple[float, float, float]:
    """(event-loop CPU s, process CPU s, wall s) to forward every copy and see it delivered."""
    topic = f"forward-cost-{uuid.uuid4().hex[:8]}"
    await create_topic(kafka, topic, PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka, compression_type="zstd", max_batch_size=1024 * 1024, linger_ms=5, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        output = DirectOutput(lambda: producer, BuiltBatch)
        await producer.partitions_for(topic)
        loop_cpu, process_cpu, wall = time.thread_time(), time.process_time(), time.perf_counter()
        for start in range(0, len(originals), PER_CALL):
            home, offsets = start // PER_CALL % PARTITIONS, range(start, min(start + PER_CALL, len(originals)))
            if off_loop:
                await output.send_soon(topic, home, partial(copies, originals, offsets))
            else:
                records, stamps = copies(originals, offsets)
                await output.send(topic, home, records, exact=True, timestamps=stamps)
        await output.queued()
        await producer.flush()
        output.check()
        return time.thread_time() - loop_cpu, time.process_time() - process_cpu, time.perf_counter() - wall
    finally:
        await producer.stop()


async def measure(kafka: str) -> None:
    originals = [(key, value, 1_700_000_000_000 + offset) for offset, (key, value, _) in enumerate(bench_events(COPIES, 100_000))]
    for _ in range(3):
        for name, off_loop in (("send (on the event loop)", False), ("send_soon (in the output's thread)", True)):
            loop_cpu, process_cpu, wall = await forward_all(kafka, originals, off_loop)
            print(
                f"{name:36s} event loop {loop_cpu / COPIES * 1e6:5.2f} us/copy, "
                f"process {process_cpu / COPIES * 1e6:5.2f} us/copy, {wall:5.2f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kafka", help="an existing cluster; default: start one Apache Kafka node")
    args = parser.parse_args()
    if args.kafka:
        asyncio.run(measure(args.kafka))
        return
    cluster = KafkaCluster(nodes=1, heap_mb=1024).start()
    try:
        asyncio.run(measure(cluster.bootstrap))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()

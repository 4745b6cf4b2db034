"""A worker SIGKILLed while it forwards events to their home partitions loses and double-counts nothing."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from events.times import format_utc
from streams.engine.codec import FORWARDED_FROM
from tests.factories import BORDER_COUNTRIES, create_topics, crossing
from tests.support import H, Model, http_get, librdkafka, run_replay

pytestmark = pytest.mark.e2e
BORDERS = tuple(BORDER_COUNTRIES)
T0 = 1663754400  # 2022-09-21T10:00:00Z


def unkeyed_events(prefix: str, n: int, seed: int) -> list[tuple[str, bytes | None, bytes | None]]:
    """Crossings within grace of each other (no order makes one late), with copies resent by a feed."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for i in range(n):
        event = crossing(f"e-{i}", format_utc(T0 + rng.randint(0, 5 * H)), rng.choice(BORDERS), count=rng.randint(1, 9))
        out.append((prefix + "crossings", None, orjson.dumps(event)))
        if rng.random() < 0.05:
            out.append(out[rng.randrange(len(out))])
    return out


def border_answers(url: str) -> dict[str, list[dict[str, Any]]]:
    return {border: http_get(f"{url}/counts/borders/{border}?window=1h")[1]["windows"] for border in BORDERS}


def test_sigkill_while_forwarding_loses_and_double_counts_nothing(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    create_topics(deployment)
    messages = unkeyed_events(deployment["BORDERFLOW_TOPIC_PREFIX"], 60_000, seed=18)
    librdkafka(kafka, messages, lambda message: None)  # librdkafka spreads unkeyed messages at random: most land away from home
    model = Model(partitions=4)
    model.run(messages)
    expected = {
        border: [{"start": format_utc(h), "end": format_utc(h + H), "count": c} for h, c in sorted(model.hourly("border", border).items())]
        for border in BORDERS
    }

    crossings = deployment["BORDERFLOW_TOPIC_PREFIX"] + "crossings"
    published = asyncio.run(input_ends(kafka, crossings))
    # small fetches (BORDERFLOW_BATCH_SIZE caps the records a fetch hands on): forwarding spans many batches, so the kill lands in it
    worker = spawn_worker("w1", BORDERFLOW_BATCH_SIZE="250")
    worker.wait_ready()
    # the first forwarded copy in Kafka, not the worker's counter (/metrics may be reused for up to a second): kill at once
    asyncio.run(until_input_grows(kafka, crossings, published, deadline=time.monotonic() + 60))
    worker.kill()
    committed = asyncio.run(committed_offsets(kafka, deployment["BORDERFLOW_APP_ID"], crossings))
    # killed in the middle of forwarding: the worker had not yet committed reading all it was given
    assert any(committed.get(p, 0) < end for p, end in published.items()), (committed, published)

    worker = spawn_worker("w1", port=worker.port)
    worker.wait_ready(timeout=120)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and border_answers(worker.url) != expected:
        time.sleep(1)
    assert border_answers(worker.url) == expected
    for country in ("GE", "FI", "KZ", "MN"):
        status, body = http_get(f"{worker.url}/counts/countries/{country}?window=24h")
        assert status == 200
        assert body["windows"] == [
            {"start": format_utc(h), "end": format_utc(h + 24 * H), "count": c}
            for h, c in sorted(model.rolling("entries", country).items())
        ], country
    assert model.outcomes["late"] == 0
    # copies forwarded again after the kill (the same origin twice in the topic) were judged duplicates at home:
    # the counts above are exact although they arrived twice
    twice = asyncio.run(origins_forwarded_twice(kafka, crossings))
    assert twice > 0, "no copy was forwarded again after the kill"
    print(f"{twice} copies forwarded again after the SIGKILL, each counted once")

    # a verifying replay counts the forwarded copies as the live worker did, and writes nothing into the input topics
    before = asyncio.run(input_ends(kafka, crossings))
    result = run_replay(deployment, "--verify", "--live", worker.url)
    assert result.returncode == 0 and "IDENTICAL" in result.stderr, result.stderr[-2000:]
    assert asyncio.run(input_ends(kafka, crossings)) == before


async def input_ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(4)]
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def origins_forwarded_twice(bootstrap: str, topic: str) -> int:
    """How many origins the topic holds more than one forwarded copy of."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(4)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        origins: dict[bytes, int] = {}
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    for name, value in record.headers or ():
                        if name == FORWARDED_FROM:
                            origins[value] = origins.get(value, 0) + 1
        return sum(1 for n in origins.values() if n > 1)
    finally:
        await consumer.stop()


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}
    finally:
        await admin.close()


async def until_input_grows(bootstrap: str, topic: str, published: dict[int, int], deadline: float) -> None:
    """Return as soon as the topic holds more than ``published``: a worker has begun forwarding copies into it."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in published]
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(partitions)
            if sum(ends.values()) > sum(published.values()):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the worker never forwarded a copy")
    finally:
        await consumer.stop()

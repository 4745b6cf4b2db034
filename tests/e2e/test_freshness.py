"""Freshness: an event published to a live partition is counted soon, whatever the quiet partitions beside it do.

aiokafka keeps one fetch per broker in flight and leaves out of it the
partitions whose fetched records are still waiting to be read. In a worker
under load (here: its event loop busy half the time,
``tests/e2e/faulty_worker.py busy-loop``) the live partition's records
often wait, so the next fetch asks only for the quiet partitions, and the
broker holds it for the whole long-poll: with Faust's fixed 1.5 s, the live
partition's next events waited up to that long.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.e2e.faulty_worker import BUSY_SECONDS
from tests.factories import T0, create_topics, crossing
from tests.support import http_get, partition_for, wait_until

pytestmark = pytest.mark.e2e

LIVE_BORDER = "upper-lars"
#: one event this often to the live partition; every other input partition stays quiet
EVERY_SECONDS = 0.05
EVENTS = 100
#: well under the 1.5 s Faust holds a fetch for, with room for two busy spells and a short long-poll
WITHIN_SECONDS = 0.75


class AppliedOffsets:
    """When each offset of one partition was first seen applied by the worker (its ``/internal/offsets``)."""

    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key
        self.seen: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> AppliedOffsets:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = http_get(self.url + "/internal/offsets", timeout=5)
            except OSError:  # the test fails on the worker's silence, not here
                status, body = 0, None
            offset = (body.get("answer") or {}).get(self.key) if status == 200 and isinstance(body, dict) else None
            if offset is not None and (not self.seen or offset > self.seen[-1][0]):
                self.seen.append((offset, time.monotonic()))
            time.sleep(0.01)

    def applied_at(self, offset: int) -> float | None:
        return next((at for applied, at in self.seen if applied >= offset), None)


async def publish_live(kafka: str, topic: str, events: int, first: int = 0) -> list[tuple[int, float]]:
    """(offset, when sent) of each of ``events`` published to the live partition, one every :data:`EVERY_SECONDS`."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=0)
    await producer.start()
    try:
        sent = []
        for i in range(first, first + events):
            at = time.monotonic()
            event = orjson.dumps(crossing(f"live-{i}", T0 + i, LIVE_BORDER))
            sent.append((await producer.send(topic, event, key=LIVE_BORDER.encode()), at))
            await asyncio.sleep(EVERY_SECONDS)
        return [((await delivery).offset, at) for delivery, at in sent]
    finally:
        await producer.stop()


def test_an_event_on_a_live_partition_beside_quiet_ones_is_counted_well_within_a_long_poll(
    deployment: dict[str, str], spawn_worker: Any, kafka: str
) -> None:
    create_topics(deployment)
    topic = deployment["BORDERFLOW_TOPIC_PREFIX"] + "crossings"
    worker = spawn_worker(command=("-m", "tests.e2e.faulty_worker", "busy-loop"))
    worker.wait_ready()
    key = f"{topic}|{partition_for(LIVE_BORDER.encode(), 4)}"
    with AppliedOffsets(worker.url, key) as applied:
        [(warm_up, _)] = asyncio.run(publish_live(kafka, topic, 1))
        wait_until(lambda: applied.applied_at(warm_up) is not None, 60, "the first event was not counted")
        sent = asyncio.run(publish_live(kafka, topic, EVENTS, first=1))
        wait_until(lambda: applied.applied_at(sent[-1][0]) is not None, 30, "the last event was not counted")
    delays = [at - sent_at for offset, sent_at in sent if (at := applied.applied_at(offset)) is not None]
    assert len(delays) == len(sent)
    assert BUSY_SECONDS <= WITHIN_SECONDS / 3
    assert max(delays) < WITHIN_SECONDS, sorted(round(d, 2) for d in delays)[-10:]

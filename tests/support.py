"""Test kit: free ports, worker processes, HTTP and a reference model of the semantics."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from events.codec import decode
from events.model import Crossing, Departure, Statement
from events.partitioning import home_key
from events.times import format_utc
from events.validation import InvalidEvent
from streams.tools import launch

H = 3600


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def http_get(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    try:
        return status, orjson.loads(body)
    except orjson.JSONDecodeError:
        return status, body.decode(errors="replace")


def partition_for(key: bytes, partitions: int) -> int:
    """aiokafka's (and Kafka's) default partitioner for keyed messages."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class WorkerProcess(launch.WorkerProcess):
    """The launcher's worker, with what tests ask of it: readiness, metrics, and a stop that must be clean."""

    def wait_ready(self, timeout: float = 90.0) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n{self.tail()}")
            try:
                status, _ = http_get(self.url + "/health", timeout=2)
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.25)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait; a worker that needs a SIGKILL fails the test."""
        code = super().stop(timeout)
        if code is None:
            raise AssertionError(f"worker ignored SIGTERM for {timeout}s:\n{self.tail()}")
        return code

    def metric_lines(self, name: str, **labels: str) -> list[str]:
        """Exposition lines of one metric whose labels include ``labels``."""
        status, text = http_get(self.url + "/metrics")
        assert status == 200
        return [
            line
            for line in str(text).splitlines()
            if (line.startswith(name + "{") or line.startswith(name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items())
        ]

    def metric(self, name: str, **labels: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.metric_lines(name, **labels))


async def produce(bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


@dataclass
class Model:
    """An independent reading of DESIGN.md's semantics, one loop per partition."""

    partitions: int
    grace: float = 6 * H
    #: an event more than this ahead of when it is published (now) is invalid
    max_future: float = 6 * H
    counts: dict[tuple[str, str], dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    statements: dict[str, Statement] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: (topic, partition) -> stream time, the largest event time of a counted event
    stream_times: dict[tuple[str, int], float] = field(default_factory=dict)
    #: border -> the partition its crossings are keyed to
    border_partitions: dict[str, int] = field(default_factory=dict)

    def run(self, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
        """Judge ``(topic, key, value)`` messages in publish order, each valid event in its home partition, wherever it was sent."""
        by_partition: dict[tuple[str, int], list[bytes | None]] = defaultdict(list)
        for topic, key, value in messages:
            try:
                event = decode(value)
                part = partition_for((event.border if isinstance(event, Crossing) else event.country).encode(), self.partitions)
            except InvalidEvent:
                part = partition_for(key or b"", self.partitions)  # judged where it arrives
            by_partition[(topic, part)].append(value)
        for (topic, partition), values in by_partition.items():
            stream_time: float | None = None
            seen: set[str] = set()
            for value in values:
                try:
                    event = decode(value)
                    if not topic.endswith(event.type + "s"):
                        raise InvalidEvent("type", "wrong topic")
                except InvalidEvent:
                    self.outcomes["invalid"] += 1
                    continue
                if event.event_time > time.time() + self.max_future:
                    self.outcomes["invalid"] += 1
                    continue
                if event.event_id in seen:
                    self.outcomes["duplicate"] += 1
                    continue
                if isinstance(event, Statement):
                    seen.add(event.event_id)
                    self.statements[event.event_id] = event
                    self.outcomes["accepted"] += 1
                    continue
                if stream_time is not None and event.event_time < stream_time - self.grace:
                    self.outcomes["late"] += 1
                    continue
                seen.add(event.event_id)
                self.outcomes["accepted"] += 1
                stream_time = event.event_time if stream_time is None else max(stream_time, event.event_time)
                self.stream_times[(topic, partition)] = stream_time
                hour = int(event.event_time // H * H)
                if isinstance(event, Crossing):
                    self.border_partitions[event.border] = partition
                    self.counts[("border", event.border)][hour] += event.count
                    self.counts[("entries", event.to_country)][hour] += event.count
                    self.counts[("exits", event.from_country)][hour] += event.count
                elif isinstance(event, Departure):
                    self.counts[("departures", event.country)][hour] += event.count

    def hourly(self, kind: str, key: str) -> dict[int, int]:
        return {h: c for h, c in self.counts.get((kind, key), {}).items() if c}

    def rolling(self, kind: str, key: str, size: int = 24 * H) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for hour, count in self.hourly(kind, key).items():
            for start in range(hour - size + H, hour + 1, H):
                out[start] += count
        return dict(out)

    def current(self, topic: str, border: str, size: int) -> int:
        """A border's gauge: the ``size`` seconds of event time ending with the hour that holds its partition's stream time."""
        stream_time = self.stream_times[(topic, self.border_partitions[border])]
        end = int(stream_time // H * H) + H
        return self.observed("border", border, end - size, end)

    def net_inflow(self, country: str) -> list[dict[str, Any]]:
        """The hourly windows ``/net-inflow/{country}`` should answer with."""
        entries, departures = self.hourly("entries", country), self.hourly("departures", country)
        return [
            {
                "start": format_utc(h),
                "end": format_utc(h + H),
                "entries": entries.get(h, 0),
                "departures": departures.get(h, 0),
                "net": entries.get(h, 0) - departures.get(h, 0),
            }
            for h in sorted(entries.keys() | departures.keys())
        ]

    def observed(self, kind: str, key: str, start: float, end: float) -> int:
        return sum(c for h, c in self.hourly(kind, key).items() if start <= h < end)


def keyed(topic: str, obj: dict[str, Any]) -> tuple[str, bytes | None, bytes | None]:
    data = orjson.dumps(obj)
    return topic, home_key(decode(data)), data

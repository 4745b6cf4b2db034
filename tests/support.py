"""How tests observe: HTTP, Kafka clients, waits, and a reference model of the semantics (what they make: tests/factories.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import ChainMap, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from events.checkpoints import registered
from events.codec import decode
from events.model import Crossing, Departure, Registration, Statement
from events.times import format_utc
from events.validation import InvalidEvent

H = 3600



class Clock:
    """A clock a test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

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


async def produce(bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes | None]], **options: Any) -> None:
    """Publish and wait for every message (``options`` go to aiokafka's producer)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, **options)
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
    #: unregistered checkpoints one partition counts (BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS over the partitions)
    unregistered_per_partition: int | None = 250
    #: display names given by registrations at run time
    names: dict[str, str] = field(default_factory=dict)

    def run(self, messages: list[tuple[str, bytes | None, bytes | None]]) -> None:
        """Judge ``(topic, key, value)`` messages in publish order, each valid event in its home partition, wherever it was sent."""
        by_partition: dict[tuple[str, int], list[bytes | None]] = defaultdict(list)
        for topic, key, value in messages:
            try:
                event = decode(value)
                routed_by = event.border if isinstance(event, Crossing | Registration) else event.country
                part = partition_for(routed_by.encode(), self.partitions)
            except InvalidEvent:
                part = partition_for(key or b"", self.partitions)  # judged where it arrives
            by_partition[(topic, part)].append(value)
        shipped = {slug: (point.countries, None) for slug, point in registered().items()}
        for (topic, partition), values in by_partition.items():
            stream_time: float | None = None
            seen: set[str] = set()
            counted_unregistered: set[str] = set()
            #: border -> (countries, registered_at) of the registrations in this partition's input
            registrations: dict[str, tuple[frozenset[str], float | None]] = {}
            checkpoints = ChainMap(registrations, shipped)
            for value in values:
                try:
                    event = decode(value)
                    carried = isinstance(event, Registration) and topic.endswith("crossings")
                    if not topic.endswith(event.type + "s") and not carried:
                        raise InvalidEvent("type", "wrong topic")
                except InvalidEvent:
                    self.outcomes["invalid"] += 1
                    continue
                if event.event_time > time.time() + self.max_future:
                    self.outcomes["invalid"] += 1
                    continue
                if isinstance(event, Registration):
                    current = checkpoints.get(event.border)
                    bound = self.unregistered_per_partition
                    if current is None and bound is not None and len(registrations) >= bound:
                        self.outcomes["invalid"] += 1  # dead-lettered: too-many-checkpoints
                        continue
                    if event.event_id in seen:
                        self.outcomes["duplicate"] += 1
                        continue
                    seen.add(event.event_id)
                    self.outcomes["accepted"] += 1
                    if current is None or current[1] is None or event.registered_at >= current[1]:
                        registrations[event.border] = (event.countries, event.registered_at)
                        counted_unregistered.discard(event.border)
                        self.names[event.border] = event.name
                    continue
                if isinstance(event, Crossing):
                    known = checkpoints.get(event.border)
                    countries = None if known is None else known[0]
                    if countries is not None and countries != {event.from_country, event.to_country}:
                        self.outcomes["invalid"] += 1  # dead-lettered: invalid:border
                        continue
                    bound = self.unregistered_per_partition
                    if countries is None and bound is not None and event.border not in counted_unregistered:
                        if len(counted_unregistered) >= bound:
                            self.outcomes["invalid"] += 1  # dead-lettered: too-many-checkpoints
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
                if isinstance(event, Crossing) and event.border not in checkpoints:
                    counted_unregistered.add(event.border)
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


def as_windows(counts: dict[int, int], size: int) -> list[dict[str, Any]]:
    """Counts by window start as the HTTP API answers them (empty windows left out)."""
    return [{"start": format_utc(s), "end": format_utc(s + size), "count": c} for s, c in sorted(counts.items()) if c]


def wait_until(condition: Callable[[], bool], timeout: float, message: str) -> float:
    """Seconds until ``condition()`` held; fails with ``message`` after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(message)


def owned(worker: Any) -> set[int]:
    """The partitions a worker says it owns (none while it is not ready)."""
    status, body = http_get(worker.url + "/health")
    return set(body["partitions"]) if status == 200 else set()


def border_difference(worker: Any, model: Model, borders: Iterable[str]) -> str | None:
    """The first border whose hourly counts differ from the model, with both, or None."""
    for border in borders:
        status, body = http_get(f"{worker.url}/counts/borders/{border}?window=1h")
        got = {w["start"]: w["count"] for w in body.get("windows", [])} if status == 200 else None
        expected = {format_utc(h): c for h, c in model.hourly("border", border).items()}
        if got != expected:
            return f"{border}: got {got} (HTTP {status}), expected {expected}"
    return None


def wait_exact(worker: Any, model: Model, borders: Iterable[str], timeout: float = 90) -> None:
    """Wait until the worker's hourly counts of ``borders`` equal the model's."""
    borders = list(borders)
    deadline, different = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if (different := border_difference(worker, model, borders)) is None:
            return
        time.sleep(0.5)
    _, offsets = http_get(f"{worker.url}/internal/offsets")
    raise AssertionError(f"counts never matched the model: {different}\noffsets applied: {offsets}\n{worker.tail()}")


def answers_match(worker: Any, model: Model, borders: Iterable[str], countries: Iterable[str] = ("GE", "KZ", "FI", "MN")) -> bool:
    """Hourly border counts and rolling 24 h country entries equal the model's."""
    for border in borders:
        status, body = http_get(f"{worker.url}/counts/borders/{border}?window=1h")
        if status != 200 or body["windows"] != as_windows(model.hourly("border", border), H):
            return False
    for country in countries:
        status, body = http_get(f"{worker.url}/counts/countries/{country}?window=24h")
        if status != 200 or body["windows"] != as_windows(model.rolling("entries", country), 24 * H):
            return False
    return True


def run_replay(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``borderflow replay`` with ``args``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cli", "replay", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


#: the ingest token of the tests' workers
INGEST_TOKEN = "tok-" + "x" * 28


def post_events(
    url: str, body: bytes, content_type: str | None = "application/x-ndjson", token: str | None = INGEST_TOKEN
) -> tuple[int, Any, Any]:
    """POST ``body`` to a worker's ``/events``: status, decoded answer, headers."""
    request = urllib.request.Request(url + "/events", data=body, method="POST")  # noqa: S310
    if content_type:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, orjson.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read()), exc.headers


def librdkafka(
    bootstrap: str,
    messages: list[tuple[str, bytes | None, bytes | None]],
    key_of: Callable[[tuple[str, bytes | None, bytes | None]], bytes | None],
) -> list[int]:
    """Publish through librdkafka (confluent-kafka) with its default partitioner; the partition each message landed in."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    landed: dict[int, int] = {}
    failed: list[str] = []

    def delivered(index: int) -> Callable[[Any, Any], None]:
        def callback(error: Any, record: Any) -> None:
            if error is not None:
                failed.append(str(error))
            else:
                landed[index] = record.partition()

        return callback

    for index, item in enumerate(messages):
        producer.produce(item[0], item[2], key=key_of(item), on_delivery=delivered(index))
        producer.poll(0)
    assert producer.flush(30) == 0 and not failed, failed
    return [landed[i] for i in range(len(messages))]


def secured_env(cluster: Any, principal: str, auth: str) -> dict[str, str]:
    """``BORDERFLOW_*`` settings of ``principal`` on a secured cluster: ``auth`` a SASL mechanism (over TLS), or ``mtls``."""
    security = cluster.security
    if auth == "mtls":
        identity = security.clients[principal]
        return {
            "BORDERFLOW_KAFKA": cluster.tls_bootstrap,
            "BORDERFLOW_SECURITY_PROTOCOL": "SSL",
            "BORDERFLOW_SSL_CAFILE": str(security.ca.certificate),
            "BORDERFLOW_SSL_CERTFILE": str(identity.certificate),
            "BORDERFLOW_SSL_KEYFILE": str(identity.key),
        }
    return {
        "BORDERFLOW_KAFKA": cluster.bootstrap,
        "BORDERFLOW_SECURITY_PROTOCOL": "SASL_SSL",
        "BORDERFLOW_SASL_MECHANISM": auth,
        "BORDERFLOW_SASL_USERNAME": principal,
        "BORDERFLOW_SASL_PASSWORD": security.passwords[principal],
        "BORDERFLOW_SSL_CAFILE": str(security.ca.certificate),
    }


def secured_options(cluster: Any, principal: str, auth: str) -> dict[str, Any]:
    """The aiokafka settings borderflow's own clients get from :func:`secured_env`, but the bootstrap servers (for :func:`produce`)."""
    from streams.kafka.clients import client_options
    from streams.settings import Settings

    env = secured_env(cluster, principal, auth)
    options = client_options(Settings(**{name.removeprefix("BORDERFLOW_").lower(): value for name, value in env.items()}))
    del options["bootstrap_servers"]
    return options

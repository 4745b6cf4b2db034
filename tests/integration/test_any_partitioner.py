"""Counts are exact whatever client publishes the events: librdkafka's partitioner, unkeyed, keyed by event id, or mixed.

The events are published with confluent-kafka (librdkafka, the client under
kcat, Quix Streams, node-rdkafka and confluent-kafka-go) into a real Apache
Kafka, and checked against ``tests.support.Model``, which judges every event
in its home partition.

Lateness depends on the order in which a home partition receives its
events, and a forwarded copy arrives after those written home directly. So
the scenario comes in phases, each one processed before the next is sent:
events within grace of one another, then later events that move every
partition's stream time on, then stragglers, late events and copies. Within
a phase no order of arrival changes an outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from events.codec import decode
from events.partitioning import home_key, home_partition
from events.validation import InvalidEvent
from tests.support import H, Model, http_get, produce

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: checkpoint -> (from, to); with 4 partitions murmur2 and CRC32 send each to a different partition
BORDERS = {
    "upper-lars": ("RU", "GE"),
    "vaalimaa": ("RU", "FI"),
    "zhaisan": ("RU", "KZ"),
    "altanbulag": ("RU", "MN"),
    "syrym": ("RU", "KZ"),
    "kairak": ("RU", "KZ"),
}
COUNTRIES = ("GE", "FI", "KZ", "MN", "RU")
Message = tuple[str, bytes | None, bytes | None]


def crossing(event_id: str, at: str, border: str, count: int) -> dict[str, Any]:
    frm, to = BORDERS[border]
    return {
        "type": "crossing",
        "event_id": event_id,
        "occurred_at": at,
        "border": border,
        "from_country": frm,
        "to_country": to,
        "count": count,
    }


def departure(event_id: str, at: str, country: str, count: int) -> dict[str, Any]:
    return {"type": "departure", "event_id": event_id, "occurred_at": at, "country": country, "destination": "UZ", "count": count}


def statement(event_id: str, at: str, country: str, value: float) -> dict[str, Any]:
    return {
        "type": "statement",
        "event_id": event_id,
        "issued_at": at,
        "source": "ministry",
        "country": country,
        "metric": "entries",
        "value": value,
        "since": "2022-09-21T00:00:00Z",
    }


def message(prefix: str, obj: dict[str, Any]) -> Message:
    data = orjson.dumps(obj)
    return prefix + obj["type"] + "s", home_key(decode(data)), data


def phases(prefix: str) -> list[tuple[list[Message], list[Message]]]:
    """(originals, copies) per phase."""
    first = [
        message(prefix, crossing(f"c-{border}-{i}", f"2022-09-21T{10 + i % 6:02d}:{(7 * i) % 60:02d}:00Z", border, i + 1))
        for border in BORDERS
        for i in range(12)
    ]
    first += [
        message(prefix, departure(f"d-{country}-{i}", f"2022-09-21T{11 + i:02d}:30:00Z", country, 3 + i))
        for country in ("KZ", "GE")
        for i in range(4)
    ]
    first += [message(prefix, statement(f"s-{c}", "2022-09-21T15:00:00Z", c, 100.0)) for c in ("KZ", "GE", "FI")]
    first += [(prefix + "crossings", b"upper-lars", b"{not json"), (prefix + "departures", None, b"[1, 2, 3]")]
    later = [message(prefix, crossing(f"c-{border}-later", "2022-09-25T12:00:00Z", border, 50)) for border in BORDERS]
    later += [message(prefix, departure(f"d-{country}-later", "2022-09-25T12:00:00Z", country, 9)) for country in ("KZ", "GE")]
    last = [message(prefix, crossing(f"c-{border}-straggler", "2022-09-25T06:01:00Z", border, 7)) for border in BORDERS]
    last += [message(prefix, crossing(f"c-{border}-late", "2022-09-21T12:00:00Z", border, 1000)) for border in BORDERS]
    last += [message(prefix, departure("d-KZ-late", "2022-09-22T12:00:00Z", "KZ", 1000))]
    return [
        (first, first[::3] + first[1::5]),
        (later, later[::2]),
        (last, first[2::7] + later + last[:3]),  # copies of every phase: duplicates long after their originals
    ]


def librdkafka(bootstrap: str, messages: list[Message], key_of: Callable[[Message], bytes | None]) -> list[int]:
    """Publish through librdkafka with its default partitioner; the partition each message landed in."""
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


def away_from_home(messages: list[Message], partitions: list[int]) -> int:
    away = 0
    for (_, _, value), partition in zip(messages, partitions, strict=True):
        try:
            away += home_partition(decode(value), PARTITIONS) != partition
        except InvalidEvent:
            pass
    return away


KEYS: dict[str, Callable[[Message], bytes | None]] = {
    "librdkafka-keyed": lambda m: m[1],  # the home key, hashed with CRC32
    "librdkafka-unkeyed": lambda m: None,
    "librdkafka-by-event-id": lambda m: orjson.loads(m[2])["event_id"].encode() if m[2] and m[2].startswith(b'{"') else None,
}


def publish(mode: str, bootstrap: str, originals: list[Message], copies: list[Message]) -> int:
    """Publish a phase; how many valid messages landed away from their home partition."""
    if mode == "mixed":  # originals from aiokafka (murmur2: home), copies from librdkafka (CRC32)
        asyncio.run(produce(bootstrap, originals))
        return away_from_home(copies, librdkafka(bootstrap, copies, KEYS["librdkafka-keyed"]))
    both = originals + copies
    return away_from_home(both, librdkafka(bootstrap, both, KEYS[mode]))


def wait_for(worker: Any, condition: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} not reached within {timeout:g} s:\n{worker.tail()}")


def answers(url: str) -> dict[str, Any]:
    got: dict[str, Any] = {}
    for border in BORDERS:
        got[f"border:{border}"] = http_get(f"{url}/counts/borders/{border}?window=1h")[1]["windows"]
    for country in COUNTRIES:
        got[f"entries:{country}"] = http_get(f"{url}/counts/countries/{country}?window=1h")[1]["windows"]
        got[f"net:{country}"] = http_get(f"{url}/net-inflow/{country}?window=1h")[1]["windows"]
    got["statements"] = sorted((s["event_id"], s["observed"]) for s in http_get(f"{url}/statements")[1]["statements"])
    return got


def expected_answers(model: Model) -> dict[str, Any]:
    from events.times import format_utc

    def windows(counts: dict[int, int]) -> list[dict[str, Any]]:
        return [{"start": format_utc(h), "end": format_utc(h + H), "count": c} for h, c in sorted(counts.items())]

    out: dict[str, Any] = {}
    for border in BORDERS:
        out[f"border:{border}"] = windows(model.hourly("border", border))
    for country in COUNTRIES:
        out[f"entries:{country}"] = windows(model.hourly("entries", country))
        out[f"net:{country}"] = model.net_inflow(country)
    out["statements"] = sorted(
        (event_id, model.observed("entries", s.country, s.since or 0, s.issued_at)) for event_id, s in model.statements.items()
    )
    return out


def create_topics(env: dict[str, str]) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "cli", "topics"], env=env, check=True, capture_output=True)


@pytest.mark.parametrize(
    ("mode", "fast_path"),
    [
        ("librdkafka-keyed", "true"),
        ("librdkafka-unkeyed", "true"),
        ("librdkafka-by-event-id", "true"),
        ("mixed", "true"),
        ("librdkafka-unkeyed", "false"),  # Faust's per-message path forwards the same way
    ],
)
def test_every_window_is_exact_whatever_the_partitioner(
    deployment: dict[str, str], spawn_worker: Any, kafka: str, mode: str, fast_path: str
) -> None:
    deployment["BORDERFLOW_FAST_PATH"] = fast_path
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    worker = spawn_worker()
    worker.wait_ready()
    model = Model(partitions=PARTITIONS)
    published: list[Message] = []
    away = 0
    for originals, copies in phases(prefix):
        away += publish(mode, kafka, originals, copies)
        published += originals + copies
        judged = len(published)
        wait_for(worker, lambda: worker.metric("borderflow_events_total") >= judged, f"{judged} events judged")  # noqa: B023
    model.run(published)
    assert away > 0  # the partitioner did send events away from home
    assert answers(worker.url) == expected_answers(model)
    for outcome in ("accepted", "duplicate", "late", "invalid"):
        assert worker.metric("borderflow_events_total", outcome=outcome) == model.outcomes[outcome], outcome
    assert model.outcomes["late"] == 7 and model.outcomes["duplicate"] > 20
    assert worker.metric("borderflow_forwarded_total") == away

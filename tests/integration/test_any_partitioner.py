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

from events.codec import decode
from events.partitioning import home_key, home_partition
from events.validation import InvalidEvent
from tests.factories import BORDER_COUNTRIES, Message, create_topics, crossing, departure, statement
from tests.support import H, Model, as_windows, http_get, librdkafka, produce

pytestmark = pytest.mark.integration

PARTITIONS = 4
#: with 4 partitions murmur2 and CRC32 send each to a different partition
BORDERS = tuple(BORDER_COUNTRIES)
COUNTRIES = ("GE", "FI", "KZ", "MN", "RU")


def message(prefix: str, obj: dict[str, Any]) -> Message:
    data = orjson.dumps(obj)
    return prefix + obj["type"] + "s", home_key(decode(data)), data


def phases(prefix: str) -> list[tuple[list[Message], list[Message]]]:
    """(originals, copies) per phase."""
    first = [
        message(prefix, crossing(f"c-{border}-{i}", f"2022-09-21T{10 + i % 6:02d}:{(7 * i) % 60:02d}:00Z", border, count=i + 1))
        for border in BORDERS
        for i in range(12)
    ]
    first += [
        message(prefix, departure(f"d-{country}-{i}", f"2022-09-21T{11 + i:02d}:30:00Z", country, count=3 + i))
        for country in ("KZ", "GE")
        for i in range(4)
    ]
    first += [message(prefix, statement(f"s-{c}", "2022-09-21T15:00:00Z", c, 100.0)) for c in ("KZ", "GE", "FI")]
    first += [(prefix + "crossings", b"upper-lars", b"{not json"), (prefix + "departures", None, b"[1, 2, 3]")]
    later = [message(prefix, crossing(f"c-{border}-later", "2022-09-25T12:00:00Z", border, count=50)) for border in BORDERS]
    later += [message(prefix, departure(f"d-{country}-later", "2022-09-25T12:00:00Z", country, count=9)) for country in ("KZ", "GE")]
    last = [message(prefix, crossing(f"c-{border}-straggler", "2022-09-25T06:01:00Z", border, count=7)) for border in BORDERS]
    last += [message(prefix, crossing(f"c-{border}-late", "2022-09-21T12:00:00Z", border, count=1000)) for border in BORDERS]
    last += [message(prefix, departure("d-KZ-late", "2022-09-22T12:00:00Z", "KZ", count=1000))]
    return [
        (first, first[::3] + first[1::5]),
        (later, later[::2]),
        (last, first[2::7] + later + last[:3]),  # copies of every phase: duplicates long after their originals
    ]


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
    out: dict[str, Any] = {}
    for border in BORDERS:
        out[f"border:{border}"] = as_windows(model.hourly("border", border), H)
    for country in COUNTRIES:
        out[f"entries:{country}"] = as_windows(model.hourly("entries", country), H)
        out[f"net:{country}"] = model.net_inflow(country)
    out["statements"] = sorted(
        (event_id, model.observed("entries", s.country, s.since or 0, s.issued_at)) for event_id, s in model.statements.items()
    )
    return out


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

"""Events through the real broker into a real worker process, checked over HTTP.

Every expected figure comes from ``tests.support.Model``, an independent
reading of the contract, never from the worker's own code.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from events.times import format_utc, parse_rfc3339
from tests.factories import create_topics, crossing, keyed, scenario
from tests.support import H, Model, as_windows, consume_all, http_get, produce

pytestmark = pytest.mark.integration


def wait_for_processed(worker: Any, expected: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    seen = -1.0
    while time.monotonic() < deadline:
        seen = worker.metric("borderflow_events_total")
        if seen >= expected:
            return
        time.sleep(0.5)
    raise AssertionError(f"worker processed {seen} of {expected} events:\n{worker.tail()}")


@pytest.mark.parametrize("fast_path", ["true", "false"], ids=["whole-fetches", "faust-per-message"])
def test_scenario_answers_match_independent_counts(deployment: dict[str, str], spawn_worker: Any, kafka: str, fast_path: str) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    deployment["BORDERFLOW_FAST_PATH"] = fast_path
    create_topics(deployment)
    messages = scenario(prefix)
    asyncio.run(produce(kafka, messages))
    model = Model(partitions=4)
    model.run(messages)

    worker = spawn_worker()
    worker.wait_ready()
    wait_for_processed(worker, len(messages))

    for border in ("upper-lars", "vaalimaa", "zhaisan", "altanbulag"):
        status, body = http_get(f"{worker.url}/counts/borders/{border}?window=1h")
        assert status == 200
        assert body == {"border": border, "window": "1h", "windows": as_windows(model.hourly("border", border), H)}
        status, body = http_get(f"{worker.url}/counts/borders/{border}?window=24h")
        assert body["windows"] == as_windows(model.rolling("border", border), 24 * H)
        status, body = http_get(f"{worker.url}/counts/borders/{border}?window=all")
        assert [w["count"] for w in body["windows"]] == [sum(model.hourly("border", border).values())]

    # the on-the-hour and odd-offset events landed in the right UTC hours
    upper = model.hourly("border", "upper-lars")
    assert upper[int(parse_rfc3339("2022-09-21T10:00:00Z").timestamp())] == 10 + 4
    assert upper[int(parse_rfc3339("2022-09-21T09:00:00Z").timestamp())] == 3
    assert upper[int(parse_rfc3339("2022-09-21T11:00:00Z").timestamp())] == 6
    assert model.outcomes["late"] == 1 and model.outcomes["duplicate"] >= 3

    for country in ("GE", "KZ", "FI", "MN", "RU"):
        status, body = http_get(f"{worker.url}/counts/countries/{country}?window=1h")
        assert body["windows"] == as_windows(model.hourly("entries", country), H), country
        status, body = http_get(f"{worker.url}/net-inflow/{country}?window=1h")
        assert body == {"country": country, "window": "1h", "windows": model.net_inflow(country)}

    # start/end keep windows whose start lies in [start, end)
    status, body = http_get(f"{worker.url}/counts/borders/upper-lars?window=1h&start=2022-09-21T10:00:00Z&end=2022-09-21T11:00:00Z")
    assert [w["start"] for w in body["windows"]] == ["2022-09-21T10:00:00Z"]

    status, body = http_get(f"{worker.url}/statements")
    assert status == 200
    by_id = {s["event_id"]: s for s in body["statements"]}
    assert set(by_id) == set(model.statements)
    kinds = {"entries": "entries", "exits": "exits", "departures": "departures"}
    for event_id, stmt in model.statements.items():
        got = by_id[event_id]
        if stmt.metric in kinds and stmt.since is not None:
            observed = model.observed(kinds[stmt.metric], stmt.country, stmt.since, stmt.issued_at)
            assert got["observed"] == observed, event_id
            assert got["ratio"] == (stmt.value / observed if observed else None)
        else:
            assert got["observed"] is None and got["ratio"] is None
    status, body = http_get(f"{worker.url}/statements?country=KZ")
    assert {s["country"] for s in body["statements"]} == {"KZ"}

    # outcomes in the metrics equal the model's
    for outcome in ("accepted", "duplicate", "late", "invalid"):
        assert worker.metric("borderflow_events_total", outcome=outcome) == model.outcomes[outcome], outcome

    # every invalid or late message is in the dead-letter topic with its reason and origin
    letters = asyncio.run(consume_all(kafka, prefix + "borderflow-dlq", model.outcomes["invalid"] + model.outcomes["late"]))
    assert len(letters) == model.outcomes["invalid"] + model.outcomes["late"]
    reasons = sorted(dict(r.headers)["reason"].decode() for r in letters)
    assert reasons.count("late") == 1 and reasons.count("future") == 1
    assert "invalid:count" in reasons and "invalid:occurred_at" in reasons and "invalid:type" in reasons
    for record in letters:
        headers = dict(record.headers)
        assert record.key in (b"upper-lars", b"KZ")  # the original message's key
        assert headers["topic"].decode().startswith(prefix)
        assert int(headers["offset"]) >= 0 and int(headers["partition"]) >= 0
    assert b"{not json" in [r.value for r in letters]


def test_dead_letters_keep_the_original_key_and_headers(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    from aiokafka import AIOKafkaProducer

    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    worker = spawn_worker()
    worker.wait_ready()

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        try:
            headers = [("trace-id", b"t-123"), ("reason", b"set upstream")]
            await producer.send_and_wait(prefix + "crossings", b"{not json", key=b"feed-7", headers=headers)
        finally:
            await producer.stop()

    asyncio.run(send())
    [letter] = asyncio.run(consume_all(kafka, prefix + "borderflow-dlq", 1))
    assert letter.key == b"feed-7" and letter.value == b"{not json"
    headers = dict(letter.headers)
    assert headers["trace-id"] == b"t-123" and headers["original-reason"] == b"set upstream"
    assert headers["reason"] == b"invalid:$" and headers["topic"] == (prefix + "crossings").encode()


def test_closed_windows_reach_window_results_once_with_their_final_counts(
    deployment: dict[str, str], spawn_worker: Any, kafka: str
) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    worker = spawn_worker()
    worker.wait_ready()
    hours = ["2022-09-21T10:15:00Z", "2022-09-21T10:45:00Z", "2022-09-21T11:30:00Z", "2022-09-21T12:05:00Z"]
    messages = [keyed(prefix + "crossings", crossing(f"w-{i}", at, "upper-lars", "RU", "GE", i + 1)) for i, at in enumerate(hours)]
    messages.append(messages[0])  # a duplicate: counted once in its window
    # stream time moves past 13:00 + 6 h of grace: the 10:00, 11:00 and 12:00 windows close
    messages.append(keyed(prefix + "crossings", crossing("w-later", "2022-09-21T19:30:00Z", "upper-lars", "RU", "GE", 100)))
    asyncio.run(produce(kafka, messages))
    wait_for_processed(worker, len(messages))
    records = asyncio.run(consume_all(kafka, prefix + "window-results", 10_000, timeout=8))  # all there are
    hourly = {}
    for record in records:
        value = orjson.loads(record.value)
        assert record.key.decode() == "|".join(
            str(value[k]) for k in ("kind", "key", "window", "start", "topic", "partition")
        )
        if value["series"] == "border" and value["window"] == "1h":
            assert format_utc(value["start"]) not in hourly  # once each
            hourly[format_utc(value["start"])] = value["count"]
    assert hourly == {"2022-09-21T10:00:00Z": 1 + 2, "2022-09-21T11:00:00Z": 3, "2022-09-21T12:00:00Z": 4}
    series = {(orjson.loads(r.value)["series"], orjson.loads(r.value)["kind"]) for r in records}
    assert series == {("border", "b"), ("entries", "e"), ("exits", "x")}


def test_gauges_are_labelled_with_the_configured_windows(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    worker = spawn_worker(BORDERFLOW_BUCKET="30m", BORDERFLOW_ROLLING="12h")
    worker.wait_ready()
    times = [("a", "2022-09-21T07:10:00Z", 2), ("b", "2022-09-21T07:40:00Z", 3), ("c", "2022-09-21T12:05:00Z", 7)]
    messages = [keyed(prefix + "crossings", crossing(f"g-{i}", at, "upper-lars", "RU", "GE", n)) for i, at, n in times]
    asyncio.run(produce(kafka, messages))
    wait_for_processed(worker, len(messages))
    assert worker.metric("borderflow_crossings", border="upper-lars", window="30m") == 7  # the half hour holding stream time
    assert worker.metric("borderflow_crossings", border="upper-lars", window="12h") == 12  # the 12 h ending with it
    assert not worker.metric_lines("borderflow_crossings", window="1h")
    status, body = http_get(f"{worker.url}/counts/borders/upper-lars?window=30m")
    assert status == 200 and [w["count"] for w in body["windows"]] == [2, 3, 7]


def test_unknown_keys_are_empty_and_bad_parameters_are_named(deployment: dict[str, str], spawn_worker: Any) -> None:
    create_topics(deployment)
    worker = spawn_worker()
    worker.wait_ready()
    assert http_get(f"{worker.url}/counts/borders/nowhere") == (200, {"border": "nowhere", "window": "1h", "windows": []})
    status, body = http_get(f"{worker.url}/counts/borders/upper-lars?window=7y")
    assert status == 400 and body["parameter"] == "window"
    status, body = http_get(f"{worker.url}/counts/countries/GE?start=yesterday")
    assert status == 400 and body["parameter"] == "start"
    status, body = http_get(f"{worker.url}/net-inflow/GE?end=2022-09-21")
    assert status == 400 and body["parameter"] == "end"


def test_sigterm_stops_worker_cleanly(deployment: dict[str, str], spawn_worker: Any) -> None:
    create_topics(deployment)
    worker = spawn_worker()
    worker.wait_ready()
    state = Path(worker.env["BORDERFLOW_DATA_DIR"]) / deployment["BORDERFLOW_APP_ID"]
    assert state.stat().st_mode & 0o777 == 0o700  # the worker's state is its user's alone
    started = datetime.now(UTC)
    assert worker.stop(timeout=30) == 0
    assert (datetime.now(UTC) - started).total_seconds() < 30

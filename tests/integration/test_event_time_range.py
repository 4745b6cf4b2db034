"""An event dated before BORDERFLOW_EARLIEST, through Apache Kafka into a worker: dead-lettered, and in no answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from events.times import parse_rfc3339
from tests.factories import create_topics, departure, keyed
from tests.support import consume_all, http_get, produce, wait_until

pytestmark = pytest.mark.integration


def test_a_departure_in_year_1_is_dead_lettered_out_of_range_and_opens_no_window(
    deployment: dict[str, str], spawn_worker: Any, kafka: str
) -> None:
    """Regression: on a partition without stream time it was counted, and /net-inflow/GE began at "1-01-01T00:00:00Z"."""
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    worker = spawn_worker("w1")
    worker.wait_ready()
    topic = prefix + "departures"
    too_early = [
        keyed(topic, departure("d-year-1", "0001-01-01T00:00:00Z", country="GE", destination="TR", count=5)),
        keyed(topic, departure("d-1969", "1969-12-31T23:59:59Z", country="GE", destination="TR", count=5)),
    ]
    asyncio.run(produce(kafka, too_early))
    wait_until(lambda: worker.metric("borderflow_events_total", type="departure") >= 2, 60, "both departures judged")
    for window in ("1h", "24h", "all"):
        status, body = http_get(f"{worker.url}/net-inflow/GE?window={window}")
        assert status == 200 and body["windows"] == [], body
    letters = asyncio.run(consume_all(kafka, prefix + "borderflow-dlq", 2))
    assert sorted(dict(r.headers)["reason"].decode() for r in letters) == ["out-of-range", "out-of-range"]
    assert worker.metric("borderflow_dead_letters_total", reason="out-of-range") == 2

    asyncio.run(produce(kafka, [keyed(topic, departure("d-ok", "2022-09-21T10:00:00Z", country="GE", destination="TR", count=3))]))
    wait_until(lambda: bool(http_get(worker.url + "/net-inflow/GE?window=1h")[1]["windows"]), 60, "the valid departure counted")
    status, body = http_get(worker.url + "/net-inflow/GE?window=1h")
    assert body["windows"] == [{"start": "2022-09-21T10:00:00Z", "end": "2022-09-21T11:00:00Z", "entries": 0, "departures": 3, "net": -3}]
    for window in ("24h", "all"):
        status, body = http_get(f"{worker.url}/net-inflow/GE?window={window}")
        assert status == 200 and body["windows"], body
        for answer in body["windows"]:
            for edge in (answer["start"], answer["end"]):
                assert parse_rfc3339(edge).timestamp() >= 0 and len(edge) == len("1970-01-01T00:00:00Z"), body

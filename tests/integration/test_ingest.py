"""POST /events on a real worker and broker: what is published, what is answered, and hostile clients."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.broker.embedded import free_port
from tests import factories
from tests.factories import WorkerProcess, ndjson
from tests.support import INGEST_TOKEN as TOKEN
from tests.support import consume_all, http_get, unique
from tests.support import post_events as post

pytestmark = pytest.mark.integration


def crossing(event_id: str, count: int = 1, border: str = "upper-lars", hour: int = 10) -> dict[str, Any]:
    """A crossing of ``count`` at a quarter past ``hour`` on 21 September 2022."""
    return factories.crossing(event_id, f"2022-09-21T{hour:02d}:15:00Z", border, "RU", "GE", count)


@pytest.fixture(scope="module")
def env(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    return base | {
        "BORDERFLOW_KAFKA": kafka,
        "BORDERFLOW_APP_ID": unique("ingest"),
        "BORDERFLOW_TOPIC_PREFIX": unique("t") + ".",
        "BORDERFLOW_PARTITIONS": "4",
        "BORDERFLOW_BODY_LIMIT": str(256 * 1024),
        "BORDERFLOW_INGEST_TOKEN": TOKEN,
        "BORDERFLOW_LOG_LEVEL": "INFO",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


@pytest.fixture(scope="module")
def worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    port = free_port()
    data = tmp_path_factory.mktemp("ingest-worker")
    process = WorkerProcess(env=env | {"BORDERFLOW_WEB_PORT": str(port), "BORDERFLOW_DATA_DIR": str(data)}, port=port, log=data / "w.log")
    process.start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def border_total(worker: WorkerProcess, border: str) -> int:
    status, body = http_get(f"{worker.url}/counts/borders/{border}?window=all")
    assert status == 200
    return sum(w["count"] for w in body["windows"])


def wait_for_total(worker: WorkerProcess, border: str, expected: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while border_total(worker, border) != expected and time.monotonic() < deadline:
        time.sleep(0.3)
    assert border_total(worker, border) == expected, worker.tail(60)


def published(env: dict[str, str], expected: int, timeout: float = 5.0) -> list[Any]:
    topic = env["BORDERFLOW_TOPIC_PREFIX"] + "crossings"
    return asyncio.run(consume_all(env["BORDERFLOW_KAFKA"], topic, expected, timeout))


def test_valid_lines_are_published_and_counted_and_rejected_lines_are_not(worker: WorkerProcess, env: dict[str, str]) -> None:
    body = ndjson(crossing("a1", 5), crossing("a2", 0), crossing("a1", 5), crossing("a3", 7, hour=11)) + b'{"type": "crossing"\n'
    status, answer, _ = post(worker.url, body)
    assert status == 202, answer
    assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (2, 1, 2)
    assert [r["status"] for r in answer["results"]] == ["accepted", "rejected", "duplicate", "accepted", "rejected"]
    assert answer["results"][1]["field"] == "count" and answer["results"][4]["field"] == "$"
    wait_for_total(worker, "upper-lars", 12)

    again_status, again, _ = post(worker.url, body)
    assert again_status == 202 and again["accepted"] == 0 and again["duplicate"] == 3
    records = published(env, expected=3)
    assert sorted(orjson.loads(r.value)["event_id"] for r in records) == ["a1", "a3"]
    assert all(r.key == b"upper-lars" for r in records)
    assert border_total(worker, "upper-lars") == 12


def test_one_json_event_is_accepted_or_refused_with_the_field_named(worker: WorkerProcess) -> None:
    status, answer, _ = post(
        worker.url, orjson.dumps(crossing("j1", 3, border="vaalimaa") | {"from_country": "RU", "to_country": "FI"}), "application/json"
    )
    assert status == 202 and answer["accepted"] == 1
    status, answer, _ = post(worker.url, orjson.dumps(crossing("j2", border="Vaalimaa")), "application/json")
    assert status == 422 and answer["field"] == "border" and "border" in answer["error"]
    status, answer, _ = post(worker.url, b'{"type": ', "application/json")
    assert status == 400 and answer["field"] == "$" and "invalid JSON" in answer["error"]
    status, answer, _ = post(worker.url, b"", "application/json")
    assert status == 400 and "empty body" in answer["error"]
    status, answer, _ = post(worker.url, ndjson(crossing("j3")), "text/plain")
    assert status == 415 and answer["field"] == "Content-Type"
    status, answer, _ = post(worker.url, ndjson(crossing("j4")), None)
    assert status == 415
    wait_for_total(worker, "vaalimaa", 3)


def test_a_missing_or_wrong_token_is_401_and_publishes_nothing(worker: WorkerProcess) -> None:
    body = ndjson(crossing("t1", 100, border="kazakhstan-token-test"))
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
        status, answer, headers = post(worker.url, body, token=token)
        assert status == 401, token
        assert answer["field"] == "Authorization" and headers["WWW-Authenticate"].startswith("Bearer")
    status, answer, _ = post(worker.url, body)
    assert status == 202 and answer["accepted"] == 1
    wait_for_total(worker, "kazakhstan-token-test", 100)  # once, so the refused requests published nothing


def test_bodies_over_the_limit_are_413_whether_announced_or_streamed(worker: WorkerProcess) -> None:
    ten_mb = ndjson(*(crossing(f"big-{i}", border="big-body") for i in range(200))) * 600
    assert len(ten_mb) > 10 * 1024 * 1024
    status, answer, _ = post(worker.url, ten_mb)
    assert status == 413 and "too large" in answer["error"]

    def chunked() -> Iterator[bytes]:
        for _ in range(40):
            yield ndjson(*(crossing(f"chunk-{i}", border="big-body") for i in range(100)))

    request = urllib.request.Request(worker.url + "/events", data=chunked(), method="POST")  # noqa: S310
    request.add_header("Content-Type", "application/x-ndjson")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Transfer-Encoding", "chunked")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)  # noqa: S310
    assert info.value.code == 413
    assert border_total(worker, "big-body") == 0


def test_too_many_lines_are_413_at_once_and_nothing_is_published(worker: WorkerProcess) -> None:
    """The body limit bounds bytes; lines are bounded too, so neither the work nor the answer (a result per line) can grow."""
    started = time.monotonic()
    status, answer, _ = post(worker.url, b"1\n" * 100_000)  # 200 KB of lines, under the byte limit
    assert status == 413 and answer["field"] == "$" and "at most 10000" in answer["reason"]
    assert time.monotonic() - started < 5
    assert post(worker.url, b"1\n" * 10_001)[0] == 413
    status, answer, _ = post(worker.url, b"1\n" * 10_000)  # at the bound: every line answered
    assert status == 422 and answer["rejected"] == 10_000 and len(answer["results"]) == 10_000
    assert http_get(worker.url + "/health")[0] == 200


def test_a_slow_client_does_not_hold_up_others(worker: WorkerProcess) -> None:
    body = ndjson(crossing("slow-1", border="slow-client"))
    with socket.create_connection(("127.0.0.1", worker.port)) as slow:
        head = (
            f"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        slow.sendall(head.encode() + body[:10])
        started = time.monotonic()
        status, answer, _ = post(worker.url, ndjson(crossing("fast-1", 2, border="slow-client")))
        assert status == 202 and time.monotonic() - started < 10
        slow.sendall(body[10:])
        slow.settimeout(30)
        reply = slow.recv(65536)
    assert reply.startswith(b"HTTP/1.1 202")
    wait_for_total(worker, "slow-client", 3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
hostile_lines = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda value: json.dumps(value).encode()),  # json: integers beyond 64 bits too
    st.builds(lambda depth: b"[" * depth + b"]" * depth, st.integers(1, 5000)),
    st.sampled_from([b"NaN", b'{"count": NaN}', b'{"count": 1e999}', b'{"count": 123456789012345678901234567890}', b"\xff\xfe"]),
    st.builds(
        lambda border, count: json.dumps(crossing(unique("fz"), border=border, hour=12) | {"count": count}).encode(),
        st.text(min_size=1, max_size=12),
        st.integers(-(2**70), 2**70),
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_lines, min_size=1, max_size=8), st.sampled_from(["application/json", "application/x-ndjson"]))
def test_hostile_bodies_get_an_answer_and_never_a_server_error(worker: WorkerProcess, lines: list[bytes], content_type: str) -> None:
    status, answer, _ = post(worker.url, b"\n".join(lines), content_type)
    assert status in (202, 400, 413, 422), answer
    assert "error" in answer or "results" in answer


def test_after_all_the_hostility_the_valid_events_are_all_counted(worker: WorkerProcess) -> None:
    """Runs last in the module: the worker still serves, and a final valid batch is counted exactly."""
    lines = [crossing(f"final-{i}", i % 5 + 1, border="after-fuzz", hour=13) for i in range(500)]
    status, answer, _ = post(worker.url, ndjson(*lines))
    assert status == 202 and answer["accepted"] == 500
    wait_for_total(worker, "after-fuzz", sum(line["count"] for line in lines))
    assert worker.metric("borderflow_ingest_lines_total", status="accepted") >= 500
    assert worker.metric("borderflow_ingest_requests_total", code="401") >= 4

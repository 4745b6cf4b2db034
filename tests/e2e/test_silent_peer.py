"""A frozen peer costs one query the full peer timeout; the queries after it fail fast, naming it, until it answers again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from tests.factories import create_topics, scenario
from tests.support import Model, answers_match, http_get, owned, produce, wait_until

pytestmark = pytest.mark.e2e
BORDERS = ("upper-lars", "vaalimaa", "zhaisan", "altanbulag")
#: long enough that the frozen worker keeps its partitions through the test
SESSION = {"BORDERFLOW_SESSION_TIMEOUT": "45s", "BORDERFLOW_REBALANCE_TIMEOUT": "45s"}


def timed_query(worker: Any) -> tuple[float, int, dict[str, Any]]:
    started = time.monotonic()
    status, body = http_get(worker.url + "/counts/countries/GE?window=24h", timeout=30)  # needs every partition
    return time.monotonic() - started, status, body


def test_queries_fail_fast_while_a_peer_is_frozen_and_answer_once_it_thaws(
    deployment: dict[str, str], spawn_worker: Any, kafka: str
) -> None:
    create_topics(deployment)
    messages = scenario(deployment["BORDERFLOW_TOPIC_PREFIX"])
    model = Model(partitions=4)
    model.run(messages)
    first, second = spawn_worker("w1", **SESSION), spawn_worker("w2", **SESSION)
    first.wait_ready()
    second.wait_ready()
    wait_until(lambda: owned(first) and owned(second) and owned(first) | owned(second) == {0, 1, 2, 3}, 90, "partitions never split")
    asyncio.run(produce(kafka, messages))
    wait_until(lambda: answers_match(first, model, BORDERS), 60, "the workers never agreed with the model")

    os.kill(second.process.pid, signal.SIGSTOP)
    try:
        first_took, status, body = timed_query(first)
        assert status == 503 and f"{second.url}: did not answer in time" in body["error"], body
        later = [timed_query(first) for _ in range(3)]
    finally:
        os.kill(second.process.pid, signal.SIGCONT)
    for _, status, body in later:
        assert status == 503 and f"{second.url}: did not answer in time" in body["error"], body
    assert 9 <= first_took <= 13, f"the first query took {first_took:.1f} s, not the peer timeout"
    assert all(took < 2.5 for took, _, _ in later), [f"{took:.1f} s" for took, _, _ in later]
    thawed = wait_until(lambda: answers_match(first, model, BORDERS), 30, "no whole answer after the peer thawed")
    print(
        f"peer frozen: the first query 503 after {first_took:.1f} s, the next {', '.join(f'{t:.1f}' for t, _, _ in later)} s; "
        f"whole answers {thawed:.1f} s after it thawed"
    )

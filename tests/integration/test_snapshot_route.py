"""``GET /internal/snapshot`` on a live worker: strict parameters, bounded waits that expire."""

from __future__ import annotations

import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streams.engine.snapshots import MAX_PENDING_SNAPSHOTS
from tests.factories import create_topics
from tests.support import http_get

pytestmark = pytest.mark.integration


def test_snapshot_waits_are_strict_bounded_and_forgotten_when_they_time_out(deployment: dict[str, str], spawn_worker: Any) -> None:
    create_topics(deployment)
    worker = spawn_worker("w1")
    worker.wait_ready()
    tp = deployment["BORDERFLOW_TOPIC_PREFIX"] + "crossings|0"

    def snapshot(offset: str, wait: str) -> tuple[int, Any]:
        query = urllib.parse.urlencode([("at", f"{tp}|{offset}"), ("wait", wait)])
        return http_get(f"{worker.url}/internal/snapshot?{query}", timeout=30)

    assert snapshot("5", "nan")[0] == 400
    assert snapshot("05", "1")[0] == 400
    # more waits on one partition than it keeps: the rest are answered at once, not queued
    with ThreadPoolExecutor(MAX_PENDING_SNAPSHOTS + 8) as pool:
        answers = list(pool.map(lambda _: snapshot("1000000", "3"), range(MAX_PENDING_SNAPSHOTS + 8)))
    statuses = [body[tp]["status"] for status, body in answers if status == 200]
    assert len(statuses) == MAX_PENDING_SNAPSHOTS + 8
    assert statuses.count("timeout") == MAX_PENDING_SNAPSHOTS and statuses.count("busy") == 8
    # the waits that timed out are gone: a new one is queued again rather than refused as busy
    status, body = snapshot("1000000", "0.2")
    assert status == 200 and body[tp]["status"] == "timeout"

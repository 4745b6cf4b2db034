"""Exactly counted across SIGKILLs: a real worker process killed mid-stream and restarted."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from events.times import format_utc
from tests.factories import RANDOM_BORDERS, prepared
from tests.support import H, http_get, produce

pytestmark = pytest.mark.e2e
def test_sigkill_three_times_mid_stream_loses_and_duplicates_nothing(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    """Two workers; one is SIGKILLed three times while it works and restarted each time."""
    messages, model = prepared(deployment, 12_000, seed=7)
    peer = spawn_worker("w2")
    peer.wait_ready()
    worker = spawn_worker("w1")
    worker.wait_ready()
    slices = [messages[i * len(messages) // 4 : (i + 1) * len(messages) // 4] for i in range(4)]
    recoveries = []
    mid_stream = []
    published = 0
    for index, part in enumerate(slices):
        asyncio.run(produce(kafka, part))
        published += len(part)
        if index < 3:
            time.sleep(0.5 + index * 0.3)  # mid-stream: part of the slice is processed
            processed = worker.metric("borderflow_events_total")  # this incarnation's count
            worker.kill()
            mid_stream.append(processed)
            worker = spawn_worker("w1", port=worker.port)
            started = time.monotonic()
            worker.wait_ready(timeout=120)
            recoveries.append(time.monotonic() - started)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        totals = {b: sum(model.hourly("border", b).values()) for b in RANDOM_BORDERS}
        got = {b: sum(w["count"] for w in http_get(f"{worker.url}/counts/borders/{b}?window=1h")[1]["windows"]) for b in RANDOM_BORDERS}
        if got == totals:
            break
        time.sleep(1)
    for asked in (worker, peer):
        for border in RANDOM_BORDERS:
            status, body = http_get(f"{asked.url}/counts/borders/{border}?window=1h")
            expected = [
                {"start": format_utc(h), "end": format_utc(h + H), "count": c} for h, c in sorted(model.hourly("border", border).items())
            ]
            assert body["windows"] == expected, border
        for country in ("GE", "KZ", "FI", "MN"):
            status, body = http_get(f"{asked.url}/counts/countries/{country}?window=24h")
            assert body["windows"] == [
                {"start": format_utc(s), "end": format_utc(s + 24 * H), "count": c}
                for s, c in sorted(model.rolling("entries", country).items())
            ]
    print(f"recovery times after SIGKILL (s): {[round(r, 1) for r in recoveries]}")
    assert max(recoveries) < 30, recoveries
    print(f"events processed by each killed incarnation: {mid_stream}")
    assert any(0 < n < published for n in mid_stream), "no kill landed mid-stream"

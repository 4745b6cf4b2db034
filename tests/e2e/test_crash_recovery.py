"""Exactly counted across SIGKILLs: a real worker process killed mid-stream and restarted."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from events.times import format_utc
from tests.factories import crossing
from tests.integration.test_pipeline import create_topics
from tests.support import H, Model, http_get, keyed, produce

pytestmark = pytest.mark.e2e
BORDERS = [f"post-{i}" for i in range(12)]


def events(prefix: str, n: int, seed: int) -> list[tuple[str, bytes | None, bytes | None]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = 1663718400 + i * 20 + rng.randint(-1800, 0)  # mostly increasing, a little out of order
        event = crossing(f"e-{i}", format_utc(t), rng.choice(BORDERS), "RU", rng.choice(["GE", "KZ", "FI", "MN"]), rng.randint(1, 9))
        out.append(keyed(prefix + "crossings", event))
        if rng.random() < 0.05:
            out.append(out[-1])  # a feed resending
    return out


def prepared(deployment: dict[str, str], n: int, seed: int) -> tuple[list[tuple[str, bytes | None, bytes | None]], Model]:
    """Topics created, ``n`` events made for them, and the model's reading of those events."""
    create_topics(deployment)
    messages = events(deployment["BORDERFLOW_TOPIC_PREFIX"], n, seed)
    model = Model(partitions=4)
    model.run(messages)
    return messages, model


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
        totals = {b: sum(model.hourly("border", b).values()) for b in BORDERS}
        got = {b: sum(w["count"] for w in http_get(f"{worker.url}/counts/borders/{b}?window=1h")[1]["windows"]) for b in BORDERS}
        if got == totals:
            break
        time.sleep(1)
    for asked in (worker, peer):
        for border in BORDERS:
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

"""A feed that invents 50,000 checkpoints: all but the bound dead-lettered, series bounded, the console still drawn in seconds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from events.checkpoints import registered
from streams.tools.screenshots import chromium_page, wait_drawn
from tests.factories import T0, create_topics, crossing, keyed
from tests.support import http_get, produce, wait_until

pytestmark = pytest.mark.e2e
FLOOD = 50_000
BOUND = 1000  # BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS: 250 per partition of 4
REAL = ("upper-lars", "zhaisan", "vaalimaa", "altanbulag")


def test_a_flood_of_invented_checkpoints_stops_at_the_bound(
    deployment: dict[str, str], spawn_worker: Any, kafka: str, tmp_path: Path
) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    worker = spawn_worker("w1", BORDERFLOW_LOG_LEVEL="WARNING")
    worker.wait_ready()
    real = [
        keyed(prefix + "crossings", crossing(f"r-{b}-{h}", T0 + h * 3600, b, count=10 + h)) for h in range(24) for b in REAL
    ]
    flood = [keyed(prefix + "crossings", crossing(f"f-{i}", T0 + 23 * 3600 + i % 3600, f"zz-card-{i}", "RU", "GE")) for i in range(FLOOD)]
    asyncio.run(produce(kafka, real + flood))

    def judged() -> bool:
        return worker.metric("borderflow_events_total") >= len(real) + FLOOD

    wait_until(judged, 120, "the flood was never all judged")
    assert worker.metric("borderflow_events_total", outcome="accepted") == len(real) + BOUND
    assert worker.metric("borderflow_dead_letters_total", reason="too-many-checkpoints") == FLOOD - BOUND

    # series stop at the bound: state, gauges, overview
    gauged = {line.split('border="')[1].split('"')[0] for line in worker.metric_lines("borderflow_crossings")}
    assert len(gauged) == BOUND + len(REAL)
    status, overview = http_get(worker.url + "/overview")
    assert status == 200 and len(overview["borders"]) == BOUND + len(REAL)
    for border in REAL:
        assert overview["checkpoints"][border] == {"name": registered()[border].name, "registered": True}
    assert overview["checkpoints"]["zz-card-0"]["registered"] is False
    # a checkpoint past the bound has no counts; a registered one has every count
    assert sum(w["count"] for w in http_get(worker.url + "/counts/borders/upper-lars?window=all")[1]["windows"]) == sum(
        10 + h for h in range(24)
    )

    with chromium_page(tmp_path / "chromium-profile") as (page, problems):
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        started = time.monotonic()
        page.goto(worker.url + "/")
        wait_drawn(page, timeout=30)
        took = time.monotonic() - started
        charts = page.evaluate("() => Object.keys(window.borderflowConsole.charts).filter((id) => id.startsWith('border:'))")
        uncharted = page.evaluate("() => window.borderflowConsole.unchartedCheckpoints")
        listed = page.inner_text("#checkpoint-more")
        titles = page.evaluate("() => [...document.querySelectorAll('#checkpoint-charts h3')].map((h) => h.textContent)")
        assert not problems, problems
    assert {f"border:{b}" for b in REAL} <= set(charts) and len(charts) == len(REAL) + 12
    assert uncharted == BOUND - 12 and listed.startswith(f"{BOUND - 12:,} more unregistered checkpoints")
    assert any(t.startswith(registered()["upper-lars"].name) for t in titles)
    api = [u for u in requests if "/counts/" in u or "/net-inflow/" in u]
    assert len(api) <= 2 * (len(REAL) + 12) + 10, len(api)
    print(f"flood of {FLOOD} checkpoints: {BOUND} counted, the rest dead-lettered; console drawn in {took:.1f} s with {len(api)} queries")

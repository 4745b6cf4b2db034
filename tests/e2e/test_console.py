"""The operations console in a real browser (Debian's Chromium, driven by Playwright) draws what the model says.

The values are read from the charts themselves (the arrays uPlot draws) and
from the statements table, and compared with ``tests.support.Model``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from events.times import parse_rfc3339
from streams.tools.screenshots import chromium_page, wait_drawn
from tests.factories import create_topics, keyed, scenario, statement
from tests.support import H, Model, answers_match, http_get, produce, wait_until

pytestmark = pytest.mark.e2e
HOSTILE_SOURCE = '<img src=x onerror="window.__pwned = 1">MVD <script>window.__pwned = 2</script>'
HOSTILE_QUOTE = "</td></tr><script>window.__pwned = 3</script>"


def chart(page: Any, chart_id: str) -> dict[str, Any]:
    return page.evaluate("(id) => { const c = window.borderflowConsole.charts[id]; return c ? {data: c.data} : null; }", chart_id)


def drawn(series: list[float | None], xs: list[float], shift: float = 0) -> dict[int, int]:
    """What one drawn series shows: window start -> count, for the non-zero points."""
    return {int(x - shift): int(y) for x, y in zip(xs, series, strict=True) if y}


def test_the_console_draws_what_the_model_counts_and_shows_hostile_text_as_text(
    deployment: dict[str, str], spawn_worker: Any, kafka: str, tmp_path: Path
) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    hostile = statement("s-hostile", "2022-09-24T12:00:00Z", "GE", 99.0) | {"source": HOSTILE_SOURCE, "quote": HOSTILE_QUOTE}
    messages = [*scenario(prefix), keyed(prefix + "statements", hostile)]
    model = Model(partitions=4)
    model.run(messages)
    worker = spawn_worker("w1")
    worker.wait_ready()
    asyncio.run(produce(kafka, messages))
    wait_until(
        lambda: len(http_get(worker.url + "/statements")[1].get("statements", [])) == len(model.statements),
        60,
        "the statements never all arrived",
    )
    borders = sorted(key for kind, key in model.counts if kind == "border" and model.hourly(kind, key))

    def counted() -> bool:
        departures_in = all(
            http_get(f"{worker.url}/net-inflow/{c}?window=1h")[1].get("windows") == model.net_inflow(c) for c in ("GE", "KZ")
        )
        return answers_match(worker, model, borders) and departures_in

    wait_until(counted, 60, "the worker's counts never matched the model")
    status, _ = http_get(worker.url + "/overview")
    assert status == 200

    with chromium_page(tmp_path / "chromium-profile") as (page, problems):
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        response = page.goto(worker.url + "/")
        assert response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        wait_drawn(page)

        for border in borders:
            data = chart(page, f"border:{border}")["data"]
            assert drawn(data[1], data[0]) == model.hourly("border", border), border
            # the rolling 24 h line is drawn at the last hour of each window, over the hours that have counts
            hours = model.hourly("border", border)
            rolling = {s: c for s, c in model.rolling("border", border).items() if min(hours) <= s + 23 * H <= max(hours)}
            assert drawn(data[2], data[0], shift=23 * H) == rolling, border
        for country in ("GE", "KZ", "FI", "MN"):
            data = chart(page, f"country:{country}")["data"]
            expected = {int(parse_rfc3339(w["start"]).timestamp()): w for w in model.net_inflow(country)}
            assert drawn(data[1], data[0]) == {s: w["entries"] for s, w in expected.items() if w["entries"]}, country
            assert drawn(data[2], data[0]) == {s: w["departures"] for s, w in expected.items() if w["departures"]}, country
            assert {int(x): int(n) for x, n in zip(data[0], data[3], strict=True) if n} == {
                s: w["net"] for s, w in expected.items() if w["net"]
            }

        rows = page.eval_on_selector_all(
            "#statement-table tbody tr",
            "rows => rows.map(r => ({id: r.dataset.eventId, observed: r.dataset.observed, source: r.querySelector('.source').textContent,"
            " quote: r.querySelector('.quote').textContent, flagged: r.classList.contains('disagree')}))",
        )
        assert sorted(r["id"] for r in rows) == sorted(model.statements)
        for row in rows:
            s = model.statements[row["id"]]
            observed = (
                model.observed(s.metric, s.country, s.since or 0, s.issued_at) if s.metric in ("entries", "exits", "departures") else None
            )
            assert row["observed"] == ("" if observed is None else str(observed)), row["id"]
            ratio = s.value / observed if observed else None
            assert row["flagged"] == (observed is not None and (ratio is None or not 0.8 <= ratio <= 1.25)), row["id"]
        hostile_row = next(r for r in rows if r["id"] == "s-hostile")
        assert hostile_row["source"] == HOSTILE_SOURCE and hostile_row["quote"] == HOSTILE_QUOTE
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#statement-table img, #statement-table script").count() == 0

        tiles = dict(page.eval_on_selector_all(".tile", "ts => ts.map(t => [t.dataset.tile, t.querySelector('.figure').textContent])"))
        assert tiles["workers ready"] == "1 / 1"
        inputs = http_get(worker.url + "/overview")[1]["workers"][0]["inputs"]
        assert {f"{i['topic']}|{i['partition']}" for i in inputs} >= {f"{topic}|{part}" for topic, part in model.stream_times}
        assert tiles["input partitions served"] == str(len(inputs))
        shown = page.eval_on_selector_all("#partitions tbody tr", "rs => rs.map(r => r.dataset.tp)")
        assert sorted(shown) == sorted(f"{i['topic']}|{i['partition']}" for i in inputs)
        assert page.text_content("#status").startswith("Updated ")
        dead_letters = dict(
            page.eval_on_selector_all("#dead-letters tbody tr", "rs => rs.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
        )
        assert dead_letters["late"] == str(model.outcomes["late"])
        # rates need two readings: after a second refresh they are figures (nothing new arrived: 0)
        page.evaluate("() => window.borderflowConsole.refresh()")
        assert page.evaluate("() => window.borderflowConsole.health.rates") == {"accepted": 0, "duplicate": 0, "late": 0, "invalid": 0}
        tiles = dict(page.eval_on_selector_all(".tile", "ts => ts.map(t => [t.dataset.tile, t.querySelector('.figure').textContent])"))
        assert tiles["accepted / s"] == "0.0"

        page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
        assert (tmp_path / "console.png").stat().st_size > 50_000

        # the period selector: one day, from the URL a person would share
        day_start, day_end = "2022-09-21T00:00:00Z", "2022-09-22T00:00:00Z"
        page.goto(f"{worker.url}/?start={day_start}&end={day_end}")
        wait_drawn(page)
        assert page.input_value("#start") == "2022-09-21T00:00"
        lo, hi = parse_rfc3339(day_start).timestamp(), parse_rfc3339(day_end).timestamp()
        data = chart(page, "border:upper-lars")["data"]
        assert drawn(data[1], data[0]) == {h: c for h, c in model.hourly("border", "upper-lars").items() if lo <= h < hi}

        # a preset clicked while a refresh is running is drawn right after it, not at the next timer
        held: list[Any] = []
        page.route("**/counts/borders/**", lambda route: held.append(route))  # noqa: PLW0108 - Playwright wants a Python function
        page.evaluate("() => { window.borderflowConsole.refresh(); }")
        while not held:
            page.wait_for_timeout(50)
        page.click("button[data-preset=all]")
        for route in list(held):
            route.continue_()
        page.unroute("**/counts/borders/**")  # and lets through any held since
        assert page.url == worker.url + "/"
        full = model.hourly("border", "upper-lars")
        deadline = time.monotonic() + 10
        while drawn(*reversed(chart(page, "border:upper-lars")["data"][:2])) != full and time.monotonic() < deadline:
            page.wait_for_timeout(100)
        assert drawn(*reversed(chart(page, "border:upper-lars")["data"][:2])) == full

        foreign = [url for url in requests if not url.startswith(worker.url)]
        assert not foreign, foreign
        assert not problems, problems

"""Anonymous scrapers of a costly /metrics do not slow the worker's other routes: the text is written off the event loop."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from tests.factories import T0, create_topics, crossing, keyed
from tests.support import http_get, produce, wait_until

pytestmark = pytest.mark.e2e
#: distinct checkpoints, each a border series with two gauges (1h and 24h): a scrape of many thousand lines
FLOOD_BORDERS = 25_000
SCRAPERS = 8
SCRAPE_SECONDS = 10.0
HEALTH_P99_LIMIT = 0.050

#: runs in its own process, so that the scrapers' client work does not delay the test's own /health timings
SCRAPER = """
import sys, threading, time, urllib.request
url, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
done, failed = [], []
def scrape():
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
            done.append(1)
        except Exception as exc:
            failed.append(repr(exc))
workers = [threading.Thread(target=scrape) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(len(done), len(failed), failed[:3])
"""


def health_latencies(url: str, seconds: float) -> list[float]:
    """Seconds each of back-to-back ``GET /health`` took, for ``seconds``."""
    took = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        with urllib.request.urlopen(url + "/health", timeout=30) as response:  # noqa: S310
            response.read()
            assert response.status == 200
        took.append(time.perf_counter() - started)
        time.sleep(0.005)
    return took


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def test_health_stays_fast_while_eight_scrapers_pull_a_costly_metrics(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    # the writer's cost under many scrapes is what is measured here, not the per-client limits (test_client_limits.py)
    # and a /metrics as costly as an operator who raised the checkpoint bound can make it (test_checkpoint_flood.py keeps the default)
    worker = spawn_worker(
        "w1",
        BORDERFLOW_LOG_LEVEL="WARNING",
        BORDERFLOW_CLIENT_RATE="100000",
        BORDERFLOW_CLIENT_BURST="100000",
        BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS=str(4 * FLOOD_BORDERS),
    )
    worker.wait_ready()
    flood = [keyed(prefix + "crossings", crossing(f"f-{i}", T0 + i % 3600, f"post-{i}")) for i in range(FLOOD_BORDERS)]
    asyncio.run(produce(kafka, flood))
    wait_until(lambda: worker.metric("borderflow_events_total", outcome="accepted") >= FLOOD_BORDERS, 60, "the flood counted")
    assert len(worker.metric_lines("borderflow_crossings")) >= 2 * FLOOD_BORDERS

    quiet = health_latencies(worker.url, 1.0)
    scrapers = subprocess.Popen(
        [sys.executable, "-c", SCRAPER, worker.url + "/metrics", str(SCRAPE_SECONDS), str(SCRAPERS)], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)  # every scraper under way
        loaded = health_latencies(worker.url, SCRAPE_SECONDS - 2)
        output, _ = scrapers.communicate(timeout=60)
    finally:
        if scrapers.poll() is None:
            scrapers.kill()
            scrapers.wait()
    scraped, failed, _ = output.split(" ", 2)
    assert int(scraped) >= SCRAPERS and int(failed) == 0, output
    # measured against the same run's quiet baseline: on a shared 2-core machine the test's own neighbours move both
    assert p99(loaded) < HEALTH_P99_LIMIT + p99(quiet), (
        f"/health p99 {p99(loaded) * 1000:.1f} ms under {SCRAPERS} scrapers (median {statistics.median(loaded) * 1000:.1f} ms; "
        f"quiet: p99 {p99(quiet) * 1000:.1f} ms); {scraped} scrapes"
    )
    assert http_get(worker.url + "/health")[0] == 200
    print(
        f"/health under {SCRAPERS} scrapers: median {statistics.median(loaded) * 1000:.1f} ms, p99 {p99(loaded) * 1000:.1f} ms, "
        f"{len(loaded)} requests; quiet p99 {p99(quiet) * 1000:.1f} ms; {scraped} scrapes"
    )

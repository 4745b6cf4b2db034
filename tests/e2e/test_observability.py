"""A real Prometheus (Debian's) scrapes two real workers: every dashboard query returns data, and sums are right."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from events.checkpoints import registered
from tests.factories import create_topics, scenario
from tests.monitoring import RULES, prom_query
from tests.monitoring import prometheus as start_prometheus
from tests.support import Model, owned, produce, wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
BORDERS = ["upper-lars", "vaalimaa", "zhaisan", "altanbulag"]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Prometheus server on a free loopback port; the test writes its scrape targets."""
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\n")
    server = start_prometheus(tmp_path, config, "--web.enable-lifecycle").start()
    try:
        yield server.url, config
    finally:
        server.stop()


def configure(url: str, config: Path, targets: list[str]) -> None:
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [{"job_name": "borderflow", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    request = urllib.request.Request(url + "/-/reload", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310
        pass


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", "30s").replace("$border", ".*").replace("$country", ".*")
                out.append((path.stem, panel["title"], expr))
    return out


def test_prometheus_scraping_two_workers_answers_every_panel_and_sums_per_border_exactly(
    deployment: dict[str, str], spawn_worker: Any, kafka: str, prometheus: tuple[str, Path]
) -> None:
    prom, config = prometheus
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    w1, w2 = spawn_worker("w1"), spawn_worker("w2")
    w1.wait_ready()
    w2.wait_ready()
    wait_until(lambda: owned(w1) and owned(w2) and not owned(w1) & owned(w2), 60, "both workers own partitions")
    messages = scenario(prefix)
    asyncio.run(produce(kafka, messages))
    model = Model(partitions=4)
    model.run(messages)
    topic = prefix + "crossings"
    ingest = urllib.request.Request(  # noqa: S310
        w1.url + "/events", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(ingest, timeout=10)  # noqa: S310 - a 422, counted by code

    def gauges_exact() -> bool:
        for border in BORDERS:
            for window, size in (("1h", 3600), ("24h", 86400)):
                got = w1.metric("borderflow_crossings", border=border, window=window) + w2.metric(
                    "borderflow_crossings", border=border, window=window
                )
                if got != model.current(topic, border, size):
                    return False
        return True

    wait_until(gauges_exact, 60, "workers' gauges equal the model")

    configure(prom, config, [f"127.0.0.1:{w1.port}", f"127.0.0.1:{w2.port}"])
    wait_until(lambda: len(prom_query(prom, 'up{job="borderflow"} == 1')) == 2, 30, "both workers scraped")
    time.sleep(4)  # a few scrapes, so that rates over 30 s have two samples

    empty = []
    for board, title, expr in panel_queries():
        if not prom_query(prom, expr):
            empty.append(f"{board} / {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)

    for border in BORDERS:
        for window, size in (("1h", 3600), ("24h", 86400)):
            (summed,) = prom_query(prom, f'sum by (border) (borderflow_crossings{{border="{border}", window="{window}"}})')
            assert float(summed["value"][1]) == model.current(topic, border, size), (border, window)
            (exporters,) = prom_query(prom, f'count(borderflow_crossings{{border="{border}", window="{window}"}})')
            assert exporters["value"][1] == "1", f"{border} exported by more than its owner"

    # the dashboards label each checkpoint with its display name, joined from borderflow_checkpoint_info
    (rolling,) = [expr for _, title, expr in panel_queries() if title == "Crossings per checkpoint, rolling 24 h"]
    named = {item["metric"]["border"]: item["metric"]["name"] for item in prom_query(prom, rolling)}
    assert named == {border: registered()[border].name for border in BORDERS}

    def rule_health() -> dict[str, str]:
        groups = orjson.loads(urllib.request.urlopen(prom + "/api/v1/rules", timeout=10).read())["data"]["groups"]  # noqa: S310
        return {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}

    # every rule evaluated against real worker metrics without an error (the recording group runs every 30 s)
    wait_until(lambda: set(rule_health().values()) == {"ok"}, 45, "every rule evaluated")
    assert len(rule_health()) >= 13

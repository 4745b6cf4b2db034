"""Alerts that reach a person: Debian's Prometheus evaluates prometheus/alerts.yml on real workers on Apache Kafka,
Debian's Alertmanager routes them with alertmanager/, and a webhook receiver in the test records what arrives."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.monitoring import Receiver, Server, alertmanager
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def manager(tmp_path: Path, receiver: Receiver) -> Iterator[Server]:
    server = alertmanager(tmp_path, receiver.url).start()
    try:
        yield server
    finally:
        server.stop()


def post_alerts(manager: Server, *alerts: dict[str, dict[str, str]]) -> None:
    starts = (datetime.now(UTC) - timedelta(minutes=2)).isoformat()
    body = orjson.dumps([dict(alert, startsAt=starts, generatorURL="http://prometheus.test/graph") for alert in alerts])
    request = urllib.request.Request(  # noqa: S310
        manager.url + "/api/v2/alerts", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        assert response.status == 200


def alert(name: str, severity: str, summary: str, **labels: str) -> dict[str, dict[str, str]]:
    return {
        "labels": {"alertname": name, "severity": severity, "team": "platform", "job": "borderflow", **labels},
        "annotations": {"summary": summary, "description": f"{summary}, in figures", "runbook_url": f"docs/runbook.md#{name.lower()}"},
    }


def test_critical_alerts_page_on_call_warnings_go_to_operations_and_a_down_worker_mutes_its_own(
    manager: Server, receiver: Receiver
) -> None:
    """Alertmanager on this repository's routes: severity picks the receiver; a worker that is down mutes its other alerts."""
    post_alerts(
        manager,
        alert("BorderflowWorkerDown", "critical", "borderflow worker w1:6066 is down", instance="w1:6066"),
        alert("BorderflowStatementDivergence", "warning", "KZ disagrees", instance="w1:6066", country="KZ"),
        alert("BorderflowStatementDivergence", "warning", "GE disagrees", instance="w2:6066", country="GE"),
    )
    wait_until(lambda: len(receiver.notifications) >= 2, 20, "two notifications")
    time.sleep(4)  # two group intervals: anything else that was going to be sent has been
    by_receiver = {(n.receiver, n.title) for n in receiver.notifications}
    assert by_receiver == {
        ("on-call", "[FIRING:1] BorderflowWorkerDown"),
        ("operations", "[FIRING:1] BorderflowStatementDivergence for GE"),
    }, by_receiver
    down = receiver.of("BorderflowWorkerDown")[0]
    assert "*borderflow worker w1:6066 is down*" in down.text
    assert "Runbook: docs/runbook.md#borderflowworkerdown" in down.text
    assert "worker w1:6066" in down.text and down.color == "danger"

    with urllib.request.urlopen(manager.url + "/api/v2/alerts", timeout=10) as response:  # noqa: S310
        held = {a["labels"].get("country", ""): a["status"] for a in orjson.loads(response.read())}
    assert held["KZ"]["state"] == "suppressed" and held["KZ"]["inhibitedBy"], held
    assert held["GE"]["state"] == "active", held

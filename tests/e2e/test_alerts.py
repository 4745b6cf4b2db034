"""Alerts that reach a person: Debian's Prometheus evaluates prometheus/alerts.yml on real workers on Apache Kafka,
Debian's Alertmanager routes them with alertmanager/, and a webhook receiver in the test records what arrives."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from events.times import parse_rfc3339
from tests.factories import Message, create_topics, crossing
from tests.monitoring import RULES, Notification, Receiver, Server, alertmanager, prom_alerts, prom_query, prometheus
from tests.support import Model, produce, wait_until

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


def held_alert_names(manager: Server) -> set[str]:
    with urllib.request.urlopen(manager.url + "/api/v2/alerts?active=true", timeout=10) as response:  # noqa: S310
        return {a["labels"]["alertname"] for a in orjson.loads(response.read())}


def alert(name: str, severity: str, summary: str, **labels: str) -> dict[str, dict[str, str]]:
    return {
        "labels": {"alertname": name, "severity": severity, "team": "platform", "job": "borderflow", **labels},
        "annotations": {"summary": summary, "description": f"{summary}, in figures", "runbook_url": f"docs/runbook.md#{name.lower()}"},
    }


def test_critical_alerts_page_on_call_warnings_go_to_operations_and_a_down_worker_mutes_its_own(
    manager: Server, receiver: Receiver
) -> None:
    """Alertmanager on this repository's routes: severity picks the receiver; a worker that is down mutes its other alerts.

    borderflow's own rules sum across workers, so none but BorderflowWorkerDown carries a worker's ``instance``; the
    muted ones are of the kind an operator adds, such as a probe of each worker's /health from outside."""
    # the worker's down alert is held first, as when Prometheus raises it: alerts posted in one request race the inhibitor
    post_alerts(manager, alert("BorderflowWorkerDown", "critical", "borderflow worker w1:6066 is down", instance="w1:6066"))
    wait_until(lambda: "BorderflowWorkerDown" in held_alert_names(manager), 10, "the down alert held")
    post_alerts(
        manager,
        alert("WorkerHealthProbeFailing", "warning", "w1 fails its probe", instance="w1:6066"),
        alert("WorkerHealthProbeFailing", "warning", "w2 fails its probe", instance="w2:6066"),
    )
    wait_until(lambda: len(receiver.notifications) >= 2, 20, "two notifications")
    time.sleep(4)  # two group intervals: anything else that was going to be sent has been
    by_receiver = {(n.receiver, n.title) for n in receiver.notifications}
    assert by_receiver == {
        ("on-call", "[FIRING:1] BorderflowWorkerDown"),
        ("operations", "[FIRING:1] WorkerHealthProbeFailing"),
    }, by_receiver
    probe = receiver.of("WorkerHealthProbeFailing")[0]
    assert "w2 fails its probe" in probe.text and "w1" not in probe.text
    down = receiver.of("BorderflowWorkerDown")[0]
    assert "*borderflow worker w1:6066 is down*" in down.text
    assert "Runbook: docs/runbook.md#borderflowworkerdown" in down.text
    assert "worker w1:6066" in down.text and down.color == "danger"

    with urllib.request.urlopen(manager.url + "/api/v2/alerts", timeout=10) as response:  # noqa: S310
        held = {(a["labels"]["alertname"], a["labels"]["instance"]): a["status"] for a in orjson.loads(response.read())}
    assert held[("WorkerHealthProbeFailing", "w1:6066")]["state"] == "suppressed", held
    assert held[("WorkerHealthProbeFailing", "w1:6066")]["inhibitedBy"], held
    assert held[("WorkerHealthProbeFailing", "w2:6066")]["state"] == "active", held


# --- real faults on real workers -------------------------------------------------------------------------------------

#: the simulated feeds are published up to this event time first: upper-lars surges in its last three hours
SURGE_UNTIL = datetime(2022, 9, 21, 16, tzinfo=UTC).timestamp()
#: then one more hour, in which the surge is over (fewer than 3 times the day before)
SURGE_OVER = SURGE_UNTIL + 3600
SURGING = "upper-lars"
#: the alerts of the faults in the data, as opposed to a worker's
DATA_ALERTS = ("BorderflowCheckpointSurge", "BorderflowStatementDivergence", "BorderflowDeadLetterRate")
#: the published figure the feeds are behind on until every upper-lars crossing is in
STATEMENT_COUNTRY = "GE"
#: when a notification of an alert with ``for: 1m`` must have arrived: the minute, scrapes and evaluations every second,
#: Alertmanager's group wait of a second, and the rest for a shared, busy machine
WORKER_DOWN_WITHIN = 100.0
#: when the resolution must have arrived after the cause went away: a restart until /metrics answers, an evaluation,
#: a group interval
RESOLVED_WITHIN = 60.0


@dataclass
class Feeds:
    """``borderflow simulate --output``'s September 2022, cut where the faults need it, as (topic, key, value)."""

    before_surge_ends: list[Message]
    surge_over: list[Message]
    rest_of_upper_lars: list[Message]
    statement: Message


def simulated_feeds(prefix: str, workdir: Path) -> Feeds:
    path = workdir / "september-2022.ndjson"
    subprocess.run([sys.executable, "-m", "cli", "simulate", "--quiet", "--output", str(path)], check=True, capture_output=True)
    crossings, statements = prefix + "crossings", prefix + "statements"
    feeds = Feeds([], [], [], ("", None, None))
    for line in path.read_bytes().splitlines():
        obj = orjson.loads(line)
        if obj["type"] == "statement":
            if obj["country"] == STATEMENT_COUNTRY:
                feeds.statement = (statements, obj["country"].encode(), line)
            continue
        if obj["type"] != "crossing":
            continue
        at = parse_rfc3339(obj["occurred_at"]).timestamp()
        message = (crossings, obj["border"].encode(), line)  # keyed as the simulator keys it
        if at < SURGE_UNTIL:
            feeds.before_surge_ends.append(message)
        elif at < SURGE_OVER:
            feeds.surge_over.append(message)
        elif obj["border"] == SURGING:
            feeds.rest_of_upper_lars.append(message)
    assert feeds.statement[2] is not None
    return feeds


def invalid_crossings(prefix: str, n: int, first: int = 0) -> list[Message]:
    """A broken feed's crossings: each with a count of 0, which the workers send to the dead-letter topic."""
    return [
        (prefix + "crossings", SURGING.encode(), orjson.dumps(crossing(f"broken-{i}", "2022-09-21T12:00:00Z", SURGING, count=0)))
        for i in range(first, first + n)
    ]


@dataclass
class Stack:
    """Two workers, Prometheus with the repository's rules scraping them every second, Alertmanager, the receiver."""

    kafka: str
    prefix: str
    workers: dict[str, Any]
    prometheus: Server
    receiver: Receiver
    spawn: Any

    def publish(self, messages: list[Message]) -> None:
        asyncio.run(produce(self.kafka, messages))

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in prom_alerts(self.prometheus.url) if a["labels"]["alertname"] == name]

    def notification(self, name: str, status: str, within: float, since: float) -> Notification:
        """The first ``status`` notification of alert ``name``; it must arrive within ``within`` seconds of ``since``."""
        left = max(1.0, within - (time.monotonic() - since) + 1)  # it may have come while the test was busy elsewhere
        wait_until(lambda: bool(self.receiver.of(name, status)), left, f"{status} {name}")
        first = self.receiver.of(name, status)[0]
        assert first.received - since <= within, (name, status, first.received - since)
        return first


@pytest.fixture
def stack(deployment: dict[str, str], spawn_worker: Any, kafka: str, tmp_path: Path, receiver: Receiver) -> Iterator[Stack]:
    create_topics(deployment)
    workers = {name: spawn_worker(name) for name in ("w1", "w2")}
    for worker in workers.values():
        worker.wait_ready()
    manager = alertmanager(tmp_path, receiver.url).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                # the rule files as they are; only how often Prometheus scrapes and evaluates is shortened
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{manager.port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "borderflow", "static_configs": [{"targets": [f"127.0.0.1:{w.port}" for w in workers.values()]}]}
                ],
            }
        )
    )
    prom = prometheus(tmp_path, config).start()
    try:
        wait_until(lambda: len(prom_query(prom.url, 'up{job="borderflow"} == 1')) == 2, 30, "both workers scraped")
        yield Stack(kafka, deployment["BORDERFLOW_TOPIC_PREFIX"], workers, prom, receiver, spawn_worker)
    finally:
        prom.stop()
        manager.stop()


def kill_and_restart_worker(stack: Stack, while_down: Callable[[], None]) -> None:
    """w2 SIGKILLed: on-call is paged with the runbook and the figures; started again: the page resolves."""
    w2 = stack.workers["w2"]
    instance = f"127.0.0.1:{w2.port}"
    killed = time.monotonic()
    w2.kill()
    while_down()
    page = stack.notification("BorderflowWorkerDown", "firing", WORKER_DOWN_WITHIN, killed)
    print(f"BorderflowWorkerDown arrived {page.received - killed:.1f} s after the SIGKILL")
    assert page.receiver == "on-call" and page.color == "danger"
    assert page.title == "[FIRING:1] BorderflowWorkerDown"
    assert f"*borderflow worker {instance} is down*" in page.text
    assert f"Prometheus cannot scrape {instance}; 1 of 2 workers answer." in page.text
    assert "Runbook: docs/runbook.md#borderflowworkerdown" in page.text

    restarted = time.monotonic()
    stack.workers["w2"] = stack.spawn("w2", port=w2.port)
    resolved = stack.notification("BorderflowWorkerDown", "resolved", RESOLVED_WITHIN, restarted)
    print(f"BorderflowWorkerDown resolved {resolved.received - restarted:.1f} s after the restart")
    assert resolved.receiver == "on-call" and "*Resolved:*" in resolved.text
    assert "Runbook: docs/runbook.md#borderflowworkerdown" in resolved.text


def surge_figures(text: str) -> tuple[int, int]:
    found = re.search(rf"(\d+) people crossed at {SURGING} in the current hour of event time, against an hourly average of (\d+)", text)
    assert found, text
    return int(found[1]), int(found[2])


def expected_surge(feeds: Feeds) -> tuple[int, int]:
    """The reference model's reading of the feeds: upper-lars's current hour, and its average over the 23 before."""
    model = Model(partitions=4)
    model.run(feeds.before_surge_ends)
    topic = feeds.before_surge_ends[0][0]
    hour, day = model.current(topic, SURGING, 3600), model.current(topic, SURGING, 86400)
    return hour, round((day - hour) / 23)


def test_a_killed_worker_pages_on_call_and_resolves_and_each_fault_raises_its_alert(stack: Stack, tmp_path: Path) -> None:
    """The default run: BorderflowWorkerDown (``for: 1m``) all the way to the receiver and back; the surge, the divergent
    statement and the invalid burst each make their alert pending in Prometheus with its figures and runbook link, and
    inactive again when the cause goes away. Their delivery (``for:`` of 10 and 30 minutes) is the soak test below."""
    feeds = simulated_feeds(stack.prefix, tmp_path)
    burst = invalid_crossings(stack.prefix, 300)

    def faults() -> None:
        stack.publish([*feeds.before_surge_ends, feeds.statement, *burst])

        def raised() -> dict[str, dict[str, Any]]:
            return {name: alerts[0] for name in DATA_ALERTS if (alerts := stack.alerts(name))}

        wait_until(lambda: len(raised()) == 3, 90, f"the three faults' alerts pending: {raised()}")
        alerts = raised()
        surge = alerts["BorderflowCheckpointSurge"]
        assert [a["labels"]["border"] for a in stack.alerts("BorderflowCheckpointSurge")] == [SURGING]
        assert surge_figures(surge["annotations"]["description"]) == expected_surge(feeds)
        divergence = alerts["BorderflowStatementDivergence"]
        assert divergence["labels"]["country"] == STATEMENT_COUNTRY
        assert "The statement gives 53000, the feeds show" in divergence["annotations"]["description"]
        assert alerts["BorderflowDeadLetterRate"]["annotations"]["summary"].endswith("of events go to the dead-letter topic")
        for name, alert in alerts.items():
            assert alert["annotations"]["runbook_url"] == f"docs/runbook.md#{name.lower()}"
        # the causes go away: the feeds catch up with the statement and outnumber the burst; the surge hour is past
        stack.publish([*feeds.surge_over, *feeds.rest_of_upper_lars])

    kill_and_restart_worker(stack, faults)
    wait_until(lambda: not any(stack.alerts(name) for name in DATA_ALERTS), 120, "the three faults' alerts inactive")
    assert {n.alertname() for n in stack.receiver.notifications} == {"BorderflowWorkerDown"}, "a pending alert notified someone"


#: when each delivery must have arrived: the rule's ``for:``, the recording rules' 30 s interval, the time the workers
#: take to apply the fault, and a margin for a shared machine
SURGE_WITHIN = 12 * 60.0
#: the broken feed must first outweigh 5 % of the feeds published with it (under a minute at two a second)
DEAD_LETTERS_WITHIN = 14 * 60.0
DIVERGENCE_WITHIN = 33 * 60.0
#: dead letters resolve once the broken feed's last messages have left the rule's ten-minute rate window
DEAD_LETTERS_RESOLVED_WITHIN = 12 * 60.0


class BrokenFeed(threading.Thread):
    """A feed that publishes ``per_second`` invalid crossings every second until stopped."""

    def __init__(self, stack: Stack, per_second: int) -> None:
        super().__init__(daemon=True)
        self.stack, self.per_second, self.sent = stack, per_second, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            self.stack.publish(invalid_crossings(self.stack.prefix, self.per_second, first=self.sent))
            self.sent += self.per_second

    def stop(self) -> None:
        self.stopped.set()
        self.join(30)


@pytest.mark.soak
@pytest.mark.timeout(45 * 60)
def test_every_fault_reaches_a_person_with_its_runbook_and_resolves_when_it_goes_away(stack: Stack, tmp_path: Path) -> None:
    """All four alerts of the issue delivered through Alertmanager with the repository's rule files: about 33 minutes,
    most of it BorderflowStatementDivergence's ``for: 30m``."""
    feeds = simulated_feeds(stack.prefix, tmp_path)
    broken = BrokenFeed(stack, per_second=2)
    started = time.monotonic()

    def faults() -> None:
        stack.publish([*feeds.before_surge_ends, feeds.statement])
        broken.start()

    try:
        kill_and_restart_worker(stack, faults)

        surge = stack.notification("BorderflowCheckpointSurge", "firing", SURGE_WITHIN, started)
        print(f"BorderflowCheckpointSurge arrived {surge.received - started:.0f} s after the feeds")
        assert surge.receiver == "operations" and surge.title == f"[FIRING:1] BorderflowCheckpointSurge at {SURGING}"
        assert surge_figures(surge.text) == expected_surge(feeds)
        assert "Runbook: docs/runbook.md#borderflowcheckpointsurge" in surge.text
        over = time.monotonic()
        stack.publish(feeds.surge_over)
        stack.notification("BorderflowCheckpointSurge", "resolved", RESOLVED_WITHIN, over)

        dead = stack.notification("BorderflowDeadLetterRate", "firing", DEAD_LETTERS_WITHIN, started)
        print(f"BorderflowDeadLetterRate arrived {dead.received - started:.0f} s after the broken feed started")
        assert dead.receiver == "operations" and dead.title == "[FIRING:1] BorderflowDeadLetterRate"
        assert re.search(r"\*\d+(\.\d+)?% of events go to the dead-letter topic\*", dead.text), dead.text
        assert "Runbook: docs/runbook.md#borderflowdeadletterrate" in dead.text
        broken.stop()
        fixed = time.monotonic()
        resolved = stack.notification("BorderflowDeadLetterRate", "resolved", DEAD_LETTERS_RESOLVED_WITHIN, fixed)
        print(f"BorderflowDeadLetterRate resolved {resolved.received - fixed:.0f} s after the broken feed stopped")

        divergence = stack.notification("BorderflowStatementDivergence", "firing", DIVERGENCE_WITHIN, started)
        print(f"BorderflowStatementDivergence arrived {divergence.received - started:.0f} s after the statement")
        assert divergence.receiver == "operations"
        assert divergence.title == f"[FIRING:1] BorderflowStatementDivergence for {STATEMENT_COUNTRY}"
        assert re.search(r"The statement gives 53000, the feeds show \d+ over its period: \d+\.\d\d times as much", divergence.text)
        assert "Runbook: docs/runbook.md#borderflowstatementdivergence" in divergence.text
        caught_up = time.monotonic()
        stack.publish(feeds.rest_of_upper_lars)
        stack.notification("BorderflowStatementDivergence", "resolved", RESOLVED_WITHIN, caught_up)
    finally:
        if broken.is_alive():
            broken.stop()
    for note in stack.receiver.notifications:  # what docs/runbook.md shows
        print(f"--- {note.received - started:.1f} s, {note.receiver}\n{note.title}\n{note.text}")

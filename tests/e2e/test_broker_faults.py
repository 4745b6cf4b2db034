"""Broker faults on a three-node Apache Kafka cluster while events flow: nothing lost, nothing counted twice.

Every topic has three replicas with ``min.insync.replicas=2``; every producer
(the test's feed and the workers' own) is idempotent with ``acks=all``. Two
workers keep running through each fault; at the end every hourly window of
every checkpoint equals the independent model. Each test prints how long the
workers took to apply events again after the fault (docs/reliability.md).

The leader kill runs in ``make test``; the minute-long stop and the
controller kill in ``make soak``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streams.broker.apache_kafka import KafkaCluster
from tests.factories import RANDOM_BORDERS, prepared
from tests.support import produce, wait_exact

pytestmark = pytest.mark.e2e
CHUNK = 250


class Feed:
    """Publishes the messages in chunks from a thread, as an upstream system would, through every fault."""

    def __init__(self, bootstrap: str, messages: list[Any], pause: float = 0.25) -> None:
        self.bootstrap, self.messages, self.pause = bootstrap, messages, pause
        self.published = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feed:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            for start in range(0, len(self.messages), CHUNK):
                part = self.messages[start : start + CHUNK]
                asyncio.run(produce(self.bootstrap, part))
                self.published += len(part)
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.error = exc

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the feed did not finish within {timeout:.0f}s ({self.published} published)"
        assert self.error is None, f"publishing failed: {self.error!r}"


def applied(workers: list[Any]) -> int:
    """Input messages the workers have applied, from each one's progress offsets."""
    total = 0
    for worker in workers:
        try:
            with urllib.request.urlopen(worker.url + "/internal/offsets", timeout=5) as response:  # noqa: S310 - loopback
                offsets = orjson.loads(response.read()).get("answer") or {}  # none while it cannot serve its partitions
                total += sum(offset + 1 for offset in offsets.values())
        except (OSError, urllib.error.HTTPError, orjson.JSONDecodeError):
            pass  # recovering or rebalancing: counted on a later poll
    return total


def resumed_after(workers: list[Any], feed: Feed, fault: Callable[[], None], timeout: float = 180) -> float:
    """Run ``fault``; return the seconds from its start until the workers applied a chunk published after it."""
    started = time.monotonic()
    target = feed.published + CHUNK
    fault()
    while time.monotonic() - started < timeout:
        if applied(workers) >= min(target, len(feed.messages)):
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"the workers applied {applied(workers)} of {target} messages {timeout:.0f}s after the fault")


async def _leaders(bootstrap: str, topics: list[str]) -> Counter[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return Counter(int(p["leader"]) for t in await admin.describe_topics(topics) for p in t["partitions"])
    finally:
        await admin.close()


async def _topics(bootstrap: str, *prefixes: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefixes))
    finally:
        await admin.close()


def busiest_leader(cluster: KafkaCluster, deployment: dict[str, str]) -> int:
    """The node that leads most partitions of the input topics and the state changelog."""
    topics = asyncio.run(_topics(cluster.bootstrap, deployment["BORDERFLOW_TOPIC_PREFIX"], deployment["BORDERFLOW_APP_ID"]))
    wanted = [t for t in topics if t.endswith(("crossings", "departures", "statements", "changelog"))]
    assert any(t.endswith("changelog") for t in wanted), topics
    return asyncio.run(_leaders(cluster.bootstrap, wanted)).most_common(1)[0][0]


def start_on_cluster(
    deployment: dict[str, str], spawn_worker: Any, cluster: KafkaCluster, n: int, seed: int
) -> tuple[list[Any], Any, Feed]:
    deployment.update(BORDERFLOW_KAFKA=cluster.bootstrap, BORDERFLOW_REPLICATION="3")
    messages, model = prepared(deployment, n, seed=seed)
    workers = [spawn_worker("w1"), spawn_worker("w2")]
    for worker in workers:
        worker.wait_ready(timeout=120)
    return workers, model, Feed(cluster.bootstrap, messages).start()


def finish(workers: list[Any], model: Any, feed: Feed, cluster: KafkaCluster) -> None:
    feed.join(timeout=300)
    for worker in workers:
        wait_exact(worker, model, RANDOM_BORDERS, timeout=180)
        assert worker.process is not None and worker.process.poll() is None, f"a worker stopped:\n{worker.tail()}"
    for node in cluster.members:
        assert node.running, f"node {node.node_id} is not running"
    for worker in workers:  # while the cluster is there to commit to
        assert worker.stop() == 0


@pytest.mark.parametrize(
    ("fault", "events", "down_for"),
    [
        pytest.param("sigkill", 12_000, 5, id="leader-sigkilled"),
        pytest.param("sigterm", 30_000, 60, id="stopped-for-a-minute", marks=pytest.mark.soak),
    ],
)
def test_the_broker_leading_most_partitions_down_and_back_loses_and_doubles_nothing(
    deployment: dict[str, str], spawn_worker: Any, kafka_cluster: KafkaCluster, fault: str, events: int, down_for: float
) -> None:
    """SIGKILL (no controlled shutdown) or SIGTERM (leaderships moved first) of the busiest leader, then its restart."""
    workers, model, feed = start_on_cluster(deployment, spawn_worker, kafka_cluster, events, seed=31 if fault == "sigkill" else 32)
    time.sleep(3)  # events flowing
    victim = busiest_leader(kafka_cluster, deployment)
    down = kafka_cluster.kill_node if fault == "sigkill" else kafka_cluster.stop_node
    took = resumed_after(workers, feed, lambda: down(victim))
    time.sleep(down_for)
    restarted = time.monotonic()
    kafka_cluster.start_node(victim)
    back = time.monotonic() - restarted
    finish(workers, model, feed, kafka_cluster)
    print(f"leader node {victim} down ({fault}) for {down_for} s: events applied again after {took:.1f} s; back in {back:.1f} s")


@pytest.mark.soak
def test_sigkill_of_the_active_controller_loses_and_doubles_nothing(
    deployment: dict[str, str], spawn_worker: Any, kafka_cluster: KafkaCluster
) -> None:
    workers, model, feed = start_on_cluster(deployment, spawn_worker, kafka_cluster, 12_000, seed=33)
    time.sleep(3)
    controller = kafka_cluster.active_controller()
    took = resumed_after(workers, feed, lambda: kafka_cluster.kill_node(controller))
    deadline = time.monotonic() + 60
    while kafka_cluster.active_controller() == controller and time.monotonic() < deadline:
        time.sleep(0.5)
    elected = kafka_cluster.active_controller()
    assert elected != controller, "no new controller was elected"
    time.sleep(5)
    kafka_cluster.start_node(controller)
    finish(workers, model, feed, kafka_cluster)
    print(f"active controller node {controller} SIGKILLed: node {elected} took over; events applied again after {took:.1f} s")

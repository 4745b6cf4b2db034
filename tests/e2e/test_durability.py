"""State survives clean restarts, lost local stores, broker restarts and rebalances under load."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from streams.broker.apache_kafka import KafkaCluster
from tests.factories import RANDOM_BORDERS, create_topics, prepared
from tests.support import http_get, produce, wait_exact

pytestmark = pytest.mark.e2e


def test_clean_restart_and_lost_local_store_both_recover_exactly(
    deployment: dict[str, str], spawn_worker: Any, kafka: str, tmp_path: Path
) -> None:
    messages, model = prepared(deployment, 6_000, seed=11)
    worker = spawn_worker("w1")
    worker.wait_ready()
    asyncio.run(produce(kafka, messages[:3000]))
    time.sleep(1)
    assert worker.stop() == 0
    assert list((tmp_path / "w1").rglob("CLEAN_SHUTDOWN"))

    worker = spawn_worker("w1", port=worker.port)
    clean_restart = worker.wait_ready()
    asyncio.run(produce(kafka, messages[3000:]))
    wait_exact(worker, model, RANDOM_BORDERS)
    assert worker.stop() == 0

    shutil.rmtree(tmp_path / "w1")  # the disk is gone: everything comes back from the changelogs
    worker = spawn_worker("w1", port=worker.port)
    from_changelog = worker.wait_ready()
    wait_exact(worker, model, RANDOM_BORDERS)
    print(f"ready after clean restart {clean_restart:.1f} s, after losing local state {from_changelog:.1f} s")


def test_rebalance_while_events_flow_counts_exactly(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    messages, model = prepared(deployment, 8_000, seed=12)
    first = spawn_worker("w1")
    first.wait_ready()
    asyncio.run(produce(kafka, messages[:4000]))
    second = spawn_worker("w2")  # joins while the first is still working through the backlog
    asyncio.run(produce(kafka, messages[4000:6000]))
    second.wait_ready()
    asyncio.run(produce(kafka, messages[6000:]))
    wait_exact(first, model, RANDOM_BORDERS)
    wait_exact(second, model, RANDOM_BORDERS)


def test_records_fetched_as_flow_stops_are_read_again_without_a_committed_offset(
    deployment: dict[str, str], spawn_worker: Any, kafka: str
) -> None:
    """Regression: Faust sends the consumer back to the committed offset, which a new group does not have.

    The records were behind the consumer's position, and with nothing
    published after them the partitions stalled for ever.
    """
    messages, model = prepared(deployment, 3_000, seed=15)
    asyncio.run(produce(kafka, messages))  # all there before the worker's first fetch, and nothing after
    worker = spawn_worker("w1", command=("-m", "tests.e2e.faulty_worker", "flow-stops-during-fetch"))
    worker.wait_ready()
    wait_exact(worker, model, RANDOM_BORDERS)
    assert "FAULT flow stopped as" in worker.log.read_text()


def test_broker_stop_and_restart_while_the_worker_runs(deployment: dict[str, str], spawn_worker: Any, tmp_path: Path) -> None:
    """On an Apache Kafka node of its own, stopped and started again on the same port and data."""
    cluster = KafkaCluster(nodes=1, base_dir=tmp_path / "kafka").start()
    deployment.update(BORDERFLOW_KAFKA=cluster.bootstrap)
    try:
        messages, model = prepared(deployment, 4_000, seed=13)
        worker = spawn_worker("w1")
        worker.wait_ready()
        asyncio.run(produce(cluster.bootstrap, messages[:2000]))
        time.sleep(2)
        cluster.stop_node(1)
        time.sleep(3)
        cluster.start_node(1)
        asyncio.run(produce(cluster.bootstrap, messages[2000:]))
        wait_exact(worker, model, RANDOM_BORDERS, timeout=120)
        status, _ = http_get(worker.url + "/health")
        assert status == 200
        assert worker.stop() == 0  # while its broker is still there to commit to
    finally:
        cluster.stop()


def test_sigterm_stops_a_worker_whose_broker_is_gone(deployment: dict[str, str], spawn_worker: Any, tmp_path: Path) -> None:
    """Regression: the consumer thread waited 60 s for aiokafka to give up on the absent broker."""
    cluster = KafkaCluster(nodes=1, base_dir=tmp_path / "kafka").start()
    deployment.update(BORDERFLOW_KAFKA=cluster.bootstrap)
    try:
        create_topics(deployment)
        worker = spawn_worker("w1")
        worker.wait_ready()
    finally:
        cluster.stop()
    time.sleep(2)  # the worker notices: its fetches and heartbeats fail
    assert worker.stop(timeout=30) == 0


def test_a_backlog_longer_than_any_group_timeout_is_drained(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    """A worker busy for minutes must keep its group membership (regression: it left the group after 12 s and stalled)."""
    messages, model = prepared(deployment, 60_000, seed=14)
    asyncio.run(produce(kafka, messages))
    worker = spawn_worker("w1")
    worker.wait_ready()
    wait_exact(worker, model, RANDOM_BORDERS, timeout=240)

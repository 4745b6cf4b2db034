"""Chaos soak (make soak, marker ``soak``; not part of make test) on a three-node Apache Kafka cluster (replication 3,
min.insync.replicas 2): three workers SIGKILLed and SIGTERMed at random, and now and then a broker SIGKILLed and started
again, while 120,000 events with resends trickle in for about three minutes; at the end every worker answers exactly and a
replay of the topics verifies identical to the live state."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from events.times import format_utc
from streams.broker.apache_kafka import KafkaCluster
from tests.factories import RANDOM_BORDERS, prepared
from tests.support import answers_match, http_get, produce, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.soak]


def diagnose(workers: dict[str, Any], model: Any) -> str:
    lines = []
    for name, worker in workers.items():
        lines.append(f"{name}: health {http_get(worker.url + '/health')}")
    asked = next(iter(workers.values()))
    for border in RANDOM_BORDERS:
        status, body = http_get(f"{asked.url}/counts/borders/{border}?window=1h")
        got = {w["start"]: w["count"] for w in body.get("windows", [])} if status == 200 else body
        want = {format_utc(h): c for h, c in model.hourly("border", border).items()}
        if got != want:
            diff = {
                k: (got.get(k) if isinstance(got, dict) else got, want.get(k))
                for k in set(want) | set(got if isinstance(got, dict) else {})
            }
            lines.append(f"{border}: {status} {[(k, v) for k, v in sorted(diff.items()) if v[0] != v[1]][:10]}")
    for name, worker in workers.items():
        lines.append(f"--- {name}\n{worker.tail(15)}")
    return "\n".join(lines)


def test_three_workers_under_random_kills_stay_exact_and_replay_identical(
    deployment: dict[str, str], spawn_worker: Any, kafka_cluster: KafkaCluster
) -> None:
    kafka = kafka_cluster.bootstrap
    deployment.update(BORDERFLOW_KAFKA=kafka, BORDERFLOW_REPLICATION="3")
    messages, model = prepared(deployment, 120_000, seed=23)
    workers = {name: spawn_worker(name) for name in ("w1", "w2", "w3")}
    for worker in workers.values():
        worker.wait_ready(timeout=120)

    def feed() -> None:
        for start in range(0, len(messages), 1_000):  # about three minutes
            asyncio.run(produce(kafka, messages[start : start + 1_000]))
            time.sleep(1.5)

    feeder = threading.Thread(target=feed)
    feeder.start()
    rng = random.Random(5)  # noqa: S311 - reproducible chaos
    kills = broker_kills = 0
    down: int | None = None
    while feeder.is_alive():
        time.sleep(rng.uniform(4, 10))
        if down is not None:
            kafka_cluster.start_node(down)
            down = None
        elif rng.random() < 0.25:  # one broker at a time: two replicas stay in sync
            down = rng.choice([node.node_id for node in kafka_cluster.members])
            kafka_cluster.kill_node(down)
            broker_kills += 1
        name = rng.choice(sorted(workers))
        victim = workers[name]
        if rng.random() < 0.7:
            victim.kill()
        else:
            victim.signal(signal.SIGTERM)
            assert victim.process is not None
            victim.process.wait(60)
        kills += 1
        workers[name] = spawn_worker(name, port=victim.port)
    feeder.join()
    if down is not None:
        kafka_cluster.start_node(down)
    for worker in workers.values():
        worker.wait_ready(timeout=120)
    for worker in workers.values():
        try:
            wait_until(lambda w=worker: answers_match(w, model, RANDOM_BORDERS), 180, f"{worker.url} never matched the model")
        except AssertionError:
            raise AssertionError(diagnose(workers, model)) from None
    assert kills >= 15 and broker_kills >= 2

    result = subprocess.run(
        [sys.executable, "-m", "cli", "replay", "--verify", "--live", workers["w1"].url],
        env=deployment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "IDENTICAL" in result.stderr

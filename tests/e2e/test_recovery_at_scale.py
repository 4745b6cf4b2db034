"""Recovery at scale: about 1,000,000 window cells and 5,000,000 event ids in the dedup horizon (make recovery-scale).

On one Apache Kafka node, with 4 partitions, the same state is recovered four ways
and each is timed (docs/scaling.md):

(a) a cold rebuild: one worker, its local state deleted, from the changelog;
(b) a takeover after SIGKILL: of two workers, the one owning half the partitions
    is killed, and the survivor takes them over, first without a standby (it
    reads their changelog from the start), then with one (it has read it all along);
(c) a restart with the local state intact (SIGTERM, then the same worker again).

After each, the worker's counts per destination country over all time must equal
the sums of the published events: recovery is exact. ``RECOVERY_EVENTS`` and
``RECOVERY_CELLS`` scale it down for a trial run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.broker.embedded import free_port
from streams.tools.bench import BenchMessage, iter_bench_events, peak_rss_mb, prepare
from tests.factories import WorkerProcess, create_topics
from tests.support import http_get, owned, unique, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.soak]
EVENTS = int(os.environ.get("RECOVERY_EVENTS", "5000000"))
CELLS = int(os.environ.get("RECOVERY_CELLS", "1000000"))
PARTITIONS = 4
COUNTRIES = ("GE", "KZ", "FI", "MN")


class Deployment:
    def __init__(self, kafka: str, base: Path) -> None:
        self.base = base
        self.env = {
            "BORDERFLOW_KAFKA": kafka,
            "BORDERFLOW_APP_ID": unique("scale"),
            "BORDERFLOW_TOPIC_PREFIX": unique("t") + ".",
            "BORDERFLOW_PARTITIONS": str(PARTITIONS),
            "BORDERFLOW_DEDUP_HORIZON": "30d",
            "BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS": "100000",
            "BORDERFLOW_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
        self.workers: dict[str, WorkerProcess] = {}

    def worker(self, name: str, **extra: str) -> WorkerProcess:
        """Worker ``name`` started (again) with its own data dir, port and id."""
        old = self.workers.get(name)
        port = old.port if old else free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")} | self.env
        env |= {
            "BORDERFLOW_WEB_PORT": str(port),
            "BORDERFLOW_DATA_DIR": str(self.base / name),
            "BORDERFLOW_WORKER_ID": name,
        } | extra
        worker = WorkerProcess(env=env, port=port, log=self.base / f"{name}.log").start()
        self.workers[name] = worker
        return worker

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.exited() is None:
                worker.stop(120)


@pytest.fixture
def deployment(kafka: str, tmp_path: Path) -> Iterator[Deployment]:
    deployed = Deployment(kafka, tmp_path)
    try:
        yield deployed
    finally:
        deployed.stop_all()


def applied(worker: WorkerProcess) -> int:
    try:
        status, body = http_get(worker.url + "/internal/offsets", timeout=10)
    except OSError:
        return 0  # not listening yet
    return sum(o + 1 for o in (body.get("answer") or {}).values()) if status == 200 and isinstance(body, dict) else 0


def country_totals(worker: WorkerProcess) -> dict[str, int]:
    totals = {}
    for country in COUNTRIES:
        status, body = http_get(f"{worker.url}/counts/countries/{country}?window=all", timeout=60)
        assert status == 200, body
        totals[country] = sum(w["count"] for w in body["windows"])
    return totals


def serves(worker: WorkerProcess) -> set[int]:
    try:
        return owned(worker)
    except OSError:
        return set()  # not listening yet


def timed_ready(worker: WorkerProcess, partitions: set[int], timeout: float = 1800) -> float:
    started = time.monotonic()
    wait_until(lambda: serves(worker) == partitions, timeout, f"{worker.url} never served {sorted(partitions)}:\n{worker.tail()}")
    return time.monotonic() - started


def test_recovery_at_scale(deployment: Deployment) -> None:
    create_topics(deployment.env)
    expected: Counter[str] = Counter()
    borders = set()

    def counted() -> Iterator[BenchMessage]:
        """The events, made as they are published (5M at once would not fit), each added to the expected counts."""
        for key, value, partition in iter_bench_events(EVENTS, CELLS, partitions=PARTITIONS):
            event: dict[str, Any] = orjson.loads(value)
            expected[event["to_country"]] += event["count"]
            borders.add(key)
            yield key, value, partition

    began = time.monotonic()
    topic = deployment.env["BORDERFLOW_TOPIC_PREFIX"] + "crossings"
    asyncio.run(prepare(deployment.env["BORDERFLOW_KAFKA"], topic, PARTITIONS, counted(), lambda sent: None))
    took = time.monotonic() - began
    print(f"{EVENTS:,} events at {len(borders):,} checkpoints (about {CELLS:,} checkpoint-hour cells) published in {took:.0f} s")
    figures: dict[str, float] = {}
    everything = set(range(PARTITIONS))

    def exact(worker: WorkerProcess) -> None:
        assert country_totals(worker) == dict(expected.items()), "recovered counts differ from the published events"

    a = deployment.worker("a")
    began = time.monotonic()
    wait_until(lambda: applied(a) >= EVENTS, 3600, f"the events were never all applied:\n{a.tail()}")
    figures["build: all events applied (s)"] = time.monotonic() - began
    exact(a)
    assert a.process is not None
    figures["build: peak RSS, states loaded by a query (MiB)"] = peak_rss_mb(a.process.pid) or 0

    # (c) a restart with the local state intact
    assert a.stop(120) == 0
    a = deployment.worker("a")
    figures["(c) restart, local state intact (s)"] = timed_ready(a, everything)
    exact(a)

    # (a) a cold rebuild from the changelog
    assert a.stop(120) == 0
    shutil.rmtree(deployment.base / "a")
    a = deployment.worker("a")
    figures["(a) cold rebuild (s)"] = timed_ready(a, everything)
    assert a.process is not None
    figures["(a) cold rebuild: peak RSS before a query (MiB)"] = peak_rss_mb(a.process.pid) or 0
    exact(a)

    for standbys in ("0", "1"):
        # two workers, each with half: b rebuilds its half cold when it joins
        assert a.stop(120) == 0
        a = deployment.worker("a", BORDERFLOW_STANDBY_REPLICAS=standbys)
        b = deployment.worker(f"b{standbys}", BORDERFLOW_STANDBY_REPLICAS=standbys)
        wait_until(lambda a=a, b=b: serves(a) | serves(b) == everything and not serves(a) & serves(b), 1800, "no split")
        if standbys == "1":
            time.sleep(figures["(a) cold rebuild (s)"])  # time for b's standby replicas of a's partitions to catch up
        began = time.monotonic()
        a.signal(signal.SIGKILL)
        assert a.process is not None
        a.process.wait()
        figures[f"(b) takeover after SIGKILL, standby replicas {standbys} (s)"] = timed_ready(b, everything)
        exact(b)
        b.stop(120)
        a = deployment.worker("a", BORDERFLOW_STANDBY_REPLICAS=standbys)
        wait_until(lambda a=a: serves(a) == everything, 1800, "a never took everything back")
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")

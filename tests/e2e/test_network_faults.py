"""Network faults between hosts of their own: answers stay honest while they last, and the counts exact after.

Brokers and workers each run in a network namespace of their own (tests/topology.py);
the test, in the root namespace, publishes and asks every worker over the
bridge. While a fault lasts, every answer a client gets is either a count
that some correct state could give (at least what was counted before the
fault, at most everything published: never a partition twice, never one
left out) or a 503 naming what it could not read. After it, every window
equals the model, live and after a rebuild from the changelogs into fresh
state directories.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.broker.apache_kafka import KafkaCluster
from streams.tools.screenshots import chromium_page
from tests.factories import RANDOM_BORDERS, WorkerProcess, create_topics, random_crossings
from tests.support import Model, http_get, owned, produce, unique, wait_exact, wait_until
from tests.topology import Host, Topology, unsupported

pytestmark = pytest.mark.e2e
SESSION_TIMEOUT = 10.0
PARTITIONS = 4
COUNTRIES = ("GE", "KZ", "FI", "MN")


@dataclass
class Deployment:
    """A Kafka cluster and workers on hosts of their own."""

    topology: Topology
    kafka: KafkaCluster
    env: dict[str, str]
    base: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def spawn(self, host: Host, name: str | None = None) -> WorkerProcess:
        name = name or host.name
        env = self.env | {
            "BORDERFLOW_WEB_HOST": host.address,
            "BORDERFLOW_WEB_PORT": "6066",
            "BORDERFLOW_DATA_DIR": str(self.base / name),
        }
        worker = WorkerProcess(env=env, port=6066, log=self.base / f"{name}.log", host=host.address, wrapper=host.wrapper).start()
        self.workers.append(worker)
        return worker


@pytest.fixture
def network(deployment: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """``network(brokers, workers)``: a topology, its Kafka cluster (KRaft, one node per broker host) and the deployment's env."""
    reason = unsupported()
    if reason is not None:
        pytest.skip(f"network faults need network namespaces: {reason}")
    made: list[Deployment] = []

    def make(brokers: int, workers: int) -> Deployment:
        topology = Topology(brokers, workers).__enter__()
        try:
            kafka = KafkaCluster(
                nodes=brokers,
                base_dir=tmp_path / "kafka",
                hosts=[b.address for b in topology.brokers],
                wrappers=[b.wrapper for b in topology.brokers],
            ).start()
        except BaseException:
            topology.close()
            raise
        env = deployment | {
            "BORDERFLOW_KAFKA": kafka.bootstrap,
            "BORDERFLOW_APP_ID": unique("net"),
            "BORDERFLOW_SESSION_TIMEOUT": f"{SESSION_TIMEOUT:g}s",
            # workers on other hosts reach each other's internal routes only with the cluster secret
            "BORDERFLOW_CLUSTER_TOKEN": unique("cluster-secret") + "-" + "s" * 24,
        }
        made.append(Deployment(topology, kafka, env, tmp_path))
        return made[-1]

    yield make
    for net in made:
        for worker in net.workers:
            worker.kill()
        net.kafka.stop()
        net.topology.close()
        assert not net.topology.leftovers(), net.topology.leftovers()


@dataclass
class Observation:
    at: float
    worker: str
    status: int
    wrong: str | None
    #: every query answered 200 with everything published
    exact: bool = False
    #: seconds the round of queries took
    took: float = 0.0


class Clients(threading.Thread):
    """Clients asking every worker for every checkpoint's and country's all-time count, and judging each answer.

    A 200 must lie between what was counted before the fault (``before``)
    and everything published (``after``); a 503 must say why.
    """

    def __init__(self, workers: list[WorkerProcess], before: Model, after: Model) -> None:
        super().__init__(daemon=True)
        self.workers = workers
        self.before, self.after = before, after
        self.seen: list[Observation] = []
        self.health: dict[str, list[tuple[float, int]]] = {w.url: [] for w in workers}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for worker in self.workers:
                self._ask(worker)
            self.halt.wait(0.5)

    def _ask(self, worker: WorkerProcess) -> None:
        asked = time.monotonic()
        try:
            self.health[worker.url].append((time.monotonic(), http_get(worker.url + "/health", timeout=5)[0]))
            wrong: list[str] = []
            worst = 200
            exact = True
            for kind, key in [("border", b) for b in RANDOM_BORDERS] + [("entries", c) for c in COUNTRIES]:
                path = f"/counts/borders/{key}" if kind == "border" else f"/counts/countries/{key}"
                status, body = http_get(f"{worker.url}{path}?window=all", timeout=15)
                if status == 200:
                    got = sum(w["count"] for w in body["windows"])
                    low, high = sum(self.before.hourly(kind, key).values()), sum(self.after.hourly(kind, key).values())
                    if not low <= got <= high:
                        wrong.append(f"{kind} {key}: {got} not in [{low}, {high}]")
                    exact = exact and got == high
                elif status == 503 and body.get("error"):
                    worst = 503
                else:
                    wrong.append(f"{kind} {key}: HTTP {status} {body!r:.200}")
            answered = time.monotonic()
            self.seen.append(Observation(answered, worker.url, worst, "; ".join(wrong) or None, exact and worst == 200, answered - asked))
        except OSError as exc:
            self.seen.append(Observation(time.monotonic(), worker.url, 0, f"no answer: {exc!r}", took=time.monotonic() - asked))

    def stop(self) -> None:
        self.halt.set()
        self.join(30)

    def wrong(self) -> list[Observation]:
        return [o for o in self.seen if o.wrong is not None]

    def first_exact(self, url: str) -> float | None:
        """When a client first got every count exact from ``url`` (None if it never did)."""
        return next((o.at for o in self.seen if o.worker == url and o.exact), None)

    def unavailable_seconds(self, url: str) -> float:
        """From the first 503 a client got from ``url`` to the first 200 after it."""
        times = [o for o in self.seen if o.worker == url]
        first = next((o.at for o in times if o.status == 503), None)
        if first is None:
            return 0.0
        back = next((o.at for o in times if o.at > first and o.status == 200), times[-1].at)
        return back - first


def console_warning(worker: WorkerProcess, profile: Path, timeout: float = 30) -> str:
    """What the console served by ``worker`` says about stale workers, once it says anything (in Chromium)."""
    with chromium_page(profile) as (page, problems):
        page.goto(worker.url + "/")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stale = page.evaluate("() => (window.borderflowConsole && window.borderflowConsole.stale) || []")
            if stale:
                text = page.inner_text("#status")
                # a query some partitions were missing from is a 503, which Chromium logs; a script error would be a defect
                errors = [p for p in problems if "Failed to load resource" not in p]
                assert "Stale or incomplete" in text and not errors, (text, errors)
                return text
            page.wait_for_timeout(250)
    raise AssertionError(f"the console never said that {worker.url} is stale")


def models(prefix: str, n: int, seed: int) -> tuple[list[Any], Model, Model]:
    messages = random_crossings(prefix, n, seed)
    before, after = Model(partitions=PARTITIONS), Model(partitions=PARTITIONS)
    before.run(messages[: len(messages) // 2])
    after.run(messages)
    return messages, before, after


def rebuilt_exactly(net: Deployment, host: Host, model: Model) -> float:
    """A worker on fresh state directories, alone in the group, rebuilds everything from the changelogs; seconds until exact."""
    started = time.monotonic()
    fresh = net.spawn(host, name=unique("rebuilt"))
    fresh.wait_ready(120)
    wait_exact(fresh, model, RANDOM_BORDERS, timeout=120)
    return time.monotonic() - started


def test_a_worker_cut_off_from_the_brokers_never_gives_a_wrong_answer(network: Any) -> None:
    """The issue's fault: A keeps its clients but loses Kafka for longer than its session while events flow."""
    net = network(brokers=1, workers=3)
    create_topics(net.env)
    messages, before, after = models(net.env["BORDERFLOW_TOPIC_PREFIX"], 6_000, seed=23)
    a, b = net.spawn(net.topology.workers[0]), net.spawn(net.topology.workers[1])
    a.wait_ready()
    b.wait_ready()
    wait_until(lambda: owned(a) and owned(b) and owned(a) | owned(b) == set(range(PARTITIONS)), 60, "partitions never split")
    asyncio.run(produce(net.kafka.bootstrap, messages[: len(messages) // 2]))
    wait_exact(a, before, RANDOM_BORDERS)
    wait_exact(b, before, RANDOM_BORDERS)

    clients = Clients([a, b], before, after)
    clients.start()
    cut_at = time.monotonic()
    net.topology.cut([net.topology.workers[0]], net.topology.brokers)
    asyncio.run(produce(net.kafka.bootstrap, messages[len(messages) // 2 :]))
    try:
        unhealthy = wait_until(lambda: http_get(a.url + "/health", timeout=5)[0] == 503, 3 * SESSION_TIMEOUT, "A's /health stayed 200")
        status, body = http_get(a.url + "/health")
        assert status == 503 and "out of touch with its consumer group" in body["reason"], body
        assert "out of touch" in console_warning(a, net.base / "chromium-profile")
        # B takes A's partitions; A, still asked by its clients, answers from B, the current owner
        wait_until(lambda: owned(b) == set(range(PARTITIONS)), 90, f"B never took A's partitions:\n{b.tail()}")
        wait_exact(b, after, RANDOM_BORDERS, timeout=90)
        exact_during_cut = time.monotonic() - cut_at
        wait_exact(a, after, RANDOM_BORDERS, timeout=30)
        cut_lasted = time.monotonic() - cut_at
    finally:
        net.topology.heal()
    healed_at = time.monotonic()
    wait_until(lambda: owned(a) and owned(b) and owned(a) | owned(b) == set(range(PARTITIONS)), 120, f"A never rejoined:\n{a.tail()}")
    rejoined = time.monotonic() - healed_at
    wait_exact(a, after, RANDOM_BORDERS)
    wait_exact(b, after, RANDOM_BORDERS)
    clients.stop()

    assert not clients.wrong(), [f"{o.worker} at +{o.at - cut_at:.1f}s: {o.wrong}" for o in clients.wrong()][:10]
    assert unhealthy <= SESSION_TIMEOUT + 1.5, f"A's /health turned 503 only {unhealthy:.1f} s after the cut"
    answers = len(clients.seen)
    refused = sum(1 for o in clients.seen if o.status == 503)
    print(
        f"cut-off worker: /health 503 after {unhealthy:.1f} s; {answers} rounds of answers, {refused} of them 503 naming what was missing, "
        f"0 wrong; A unavailable to clients {clients.unavailable_seconds(a.url):.1f} s, B {clients.unavailable_seconds(b.url):.1f} s; "
        f"B exact {exact_during_cut:.1f} s after the cut; cut lasted {cut_lasted:.1f} s; A rejoined {rejoined:.1f} s after healing"
    )

    for worker in (a, b):
        assert worker.stop() == 0
    print(f"rebuilt from the changelogs exactly in {rebuilt_exactly(net, net.topology.workers[2], after):.1f} s")


def split_workers(net: Deployment, n: int, seed: int) -> tuple[list[WorkerProcess], Model, Model, list[Any]]:
    """Topics, two workers owning two partitions each, and the first half of ``n`` crossings counted by both."""
    create_topics(net.env)
    messages, before, after = models(net.env["BORDERFLOW_TOPIC_PREFIX"], n, seed)
    workers = [net.spawn(host) for host in net.topology.workers[:2]]
    for worker in workers:
        worker.wait_ready(120)
    split = lambda: set().union(*(owned(w) for w in workers)) == set(range(PARTITIONS)) and all(owned(w) for w in workers)  # noqa: E731
    wait_until(split, 90, "the partitions never split between the workers")
    asyncio.run(produce(net.kafka.bootstrap, messages[: len(messages) // 2]))
    for worker in workers:
        wait_exact(worker, before, RANDOM_BORDERS, timeout=120)
    return workers, before, after, messages


def exact_after(
    net: Deployment,
    workers: list[WorkerProcess],
    clients: Clients,
    after: Model,
    started: float,
    fault: str,
    caught_up_at: float | None = None,
) -> None:
    """Both workers exact, no wrong answer seen, a rebuild from the changelogs exact; the figures printed
    (with ``caught_up_at``, how many of the rounds begun after it were exact)."""
    for worker in workers:
        wait_exact(worker, after, RANDOM_BORDERS, timeout=180)
    recovered = time.monotonic() - started
    clients.stop()
    assert not clients.wrong(), [f"{o.worker} at +{o.at - started:.1f}s: {o.wrong}" for o in clients.wrong()][:10]
    refused = sum(1 for o in clients.seen if o.status == 503)
    unavailable = ", ".join(f"{clients.unavailable_seconds(w.url):.1f} s" for w in workers)
    first_exact = ", ".join("never" if (at := clients.first_exact(w.url)) is None else f"{at - started:.1f} s" for w in workers)
    took = [o.took for o in clients.seen]
    print(
        f"{fault}: {len(clients.seen)} rounds, {refused} answered 503, 0 wrong; "
        f"a round took {min(took, default=0):.1f}–{max(took, default=0):.1f} s; "
        f"unavailable {unavailable}; clients' first exact round {first_exact} after it began; exact {recovered:.1f} s after"
    )
    if caught_up_at is not None:
        later = [o for o in clients.seen if o.at - o.took >= caught_up_at]
        print(f"{fault}: {sum(o.exact for o in later)} of the {len(later)} rounds begun after the workers had caught up exact")
    for worker in workers:
        assert worker.stop() == 0
    print(f"{fault}: rebuilt from the changelogs exactly in {rebuilt_exactly(net, net.topology.workers[2], after):.1f} s")


async def topic_ends(bootstrap: str, topic: str) -> dict[str, int]:
    """``topic|partition`` -> the offset after the partition's last message."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return {f"{tp.topic}|{tp.partition}": offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def applied(net: Deployment, worker: WorkerProcess) -> dict[str, int]:
    """``topic|partition`` -> the last offset ``worker`` applied, for the partitions it owns; nothing when it does not answer."""
    token = net.env["BORDERFLOW_CLUSTER_TOKEN"]
    request = urllib.request.Request(worker.url + "/internal/offsets", headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
            return dict(orjson.loads(response.read()).get("answer") or {})
    except OSError:
        return {}


def caught_up(net: Deployment, workers: list[WorkerProcess], ends: dict[str, int], until: float) -> float | None:
    """When the workers between them had first applied every offset before ``ends``; None if not by ``until``."""
    while time.monotonic() < until:
        done: dict[str, int] = {}
        for worker in workers:
            done |= applied(net, worker)
        if all(done.get(tp, -1) >= end - 1 for tp, end in ends.items()):
            return time.monotonic()
        time.sleep(0.5)
    return None


def under_fault(
    net: Deployment, seed: int, name: str, inject: Callable[[], None], lasts: float, catch_up: bool = False, **publish: Any
) -> None:
    """Two workers count the first half; ``inject`` a fault, publish the second half (to ``publish``'s bootstrap, with its
    producer options), heal after ``lasts`` seconds; every answer meanwhile honest, and exact after.

    With ``catch_up``, also how long after the fault began the workers had applied everything published, while it lasted.
    """
    workers, before, after, messages = split_workers(net, 8_000, seed)
    clients = Clients(workers, before, after)
    clients.start()
    started = time.monotonic()
    inject()
    bootstrap = publish.pop("bootstrap", net.kafka.bootstrap)
    asyncio.run(produce(bootstrap, messages[len(messages) // 2 :], **publish))
    published = time.monotonic()
    at = None
    if catch_up:
        ends = asyncio.run(topic_ends(net.kafka.bootstrap, net.env["BORDERFLOW_TOPIC_PREFIX"] + "crossings"))
        at = caught_up(net, workers, ends, published + lasts)
        assert at is not None, f"{name}: the workers had not applied everything published when the fault ended"
        print(f"{name}: everything published applied {at - started:.1f} s after it began, {at - published:.1f} s after publishing ended")
    time.sleep(max(0.0, published + lasts - time.monotonic()))
    net.topology.heal()
    exact_after(net, workers, clients, after, started, name, caught_up_at=at)


@pytest.mark.soak
def test_workers_cut_off_from_each_other_but_not_from_the_brokers(network: Any) -> None:
    """Each keeps counting its own partitions; a query needing the other's fails naming them, never a partial sum."""
    net = network(brokers=1, workers=3)
    under_fault(net, 24, "workers split", lambda: net.topology.cut([net.topology.workers[0]], [net.topology.workers[1]]), 30)


@pytest.mark.soak
def test_one_broker_of_three_isolated_from_the_other_brokers_and_the_workers(network: Any) -> None:
    net = network(brokers=3, workers=3)
    net.env |= {"BORDERFLOW_REPLICATION": "3"}
    isolated = net.topology.brokers[0]

    def isolate() -> None:
        net.topology.cut([isolated], [*net.topology.brokers[1:], *net.topology.workers])
        net.topology.cut_from_test([isolated])  # the test's producer is one more client

    # a send waits out the leader moves (the isolated broker is fenced after its session with the controllers)
    reachable = ",".join(node.address for node in net.kafka.members[1:])
    under_fault(net, 25, "broker isolated", isolate, 30, bootstrap=reachable, request_timeout_ms=180_000, metadata_max_age_ms=3_000)


@pytest.mark.soak
def test_delay_and_loss_on_every_worker_link_for_a_minute(network: Any) -> None:
    """200 ms delay on every packet the workers send, and 5 % of their packets lost both ways, for a minute.

    So a worker's round trips to the broker and to the test take 200 ms longer, those to the other worker 400 ms.
    """
    net = network(brokers=1, workers=3)
    hosts = net.topology.workers[:2]

    def degrade() -> None:
        net.topology.lossy(hosts, 0.05)
        net.topology.delay(hosts, 200)

    under_fault(net, 26, "200 ms delay and 5 % loss", degrade, 60, catch_up=True)

"""``borderflow bench``: one worker against the Kafka consumer under it, measured in the same run.

Three contestants drain the same pre-published topic:

(a) a bare aiokafka consumer (the ceiling);
(b) an idiomatic Faust agent updating a table per event (the baseline);
(c) a borderflow worker (consume, decode, validate, dedup, window, state, changelog, commit);
(d) optionally several workers sharing the partitions;

and, for reference, the pure core alone on the same events in this process (no Kafka).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from events.checkpoints import registered
from events.partitioning import partition_for_key
from events.times import format_utc
from streams.engine.seam import refresh_metadata
from streams.kafka.admin import create_topic
from streams.tools.launch import WorkerProcess, worker_env

T0 = 1663718400  # 2022-09-21T00:00:00Z
#: how often a worker's progress is read: a worker is timed to the first poll that finds it done
POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    events: int
    seconds: float
    peak_rss_mb: float | None = None
    first_result_s: float | None = None
    #: messages the workers dead-lettered: a bench that measured those would not measure counting
    dead_letters: int | None = None

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def drain_rate(self) -> float | None:
        """Events/s from the first result on: the worker's rate without its process start (imports, group join)."""
        if self.first_result_s is None or self.seconds <= self.first_result_s:
            return None
        return self.events / (self.seconds - self.first_result_s)


#: (key, value, partition or None for the default partitioner's) of a bench message
BenchMessage = tuple[bytes, bytes, int | None]

#: twelve checkpoints of the 2022 exodus; murmur2 puts 2, 4, none and 6 of them on four partitions
UPSTREAM_CHECKPOINTS = (
    "upper-lars",
    "zhaisan",
    "karaozek",
    "syrym",
    "kairak",
    "vaalimaa",
    "nuijamaa",
    "altanbulag",
    "torfyanovka",
    "svetogorsk",
    "salla",
    "imatra",
)


@dataclass(frozen=True, slots=True)
class InputShape:
    """How the bench's crossings reach the topic: the producer's batching and compression, and the checkpoints they are keyed by."""

    name: str
    compression: str | None
    max_batch_size: int
    linger_ms: int
    #: the checkpoints, or None for about ``cells / hours`` of them
    checkpoints: tuple[str, ...] | None
    description: str


INPUT_SHAPES: Final = {
    shape.name: shape
    for shape in (
        InputShape(
            "borderflow",
            "zstd",
            512 * 1024,
            20,
            None,
            "as borderflow's own producers send: zstd, 512 KB batches, linger 20 ms, every partition busy",
        ),
        InputShape(
            "default-producer",
            None,
            16 * 1024,
            0,
            UPSTREAM_CHECKPOINTS,
            "as an upstream producer with aiokafka's defaults sends: no compression, 16 KB batches, linger 0 ms,"
            " keyed by 12 checkpoints (one of 4 partitions empty, the others uneven)",
        ),
    )
}


def bench_events(
    n: int, cells: int, seed: int = 1, misrouted: float = 0.0, partitions: int = 4, checkpoints: Sequence[str] | None = None
) -> list[BenchMessage]:
    """``n`` crossings spread over about ``cells`` (checkpoint, hour) window cells, or over ``checkpoints`` and 240 hours.

    A ``misrouted`` fraction of them is sent to a partition other than their
    home (as a producer with another partitioner would): each costs the
    worker a forward and a second read.
    """
    return list(iter_bench_events(n, cells, seed, misrouted, partitions, checkpoints))


def iter_bench_events(
    n: int, cells: int, seed: int = 1, misrouted: float = 0.0, partitions: int = 4, checkpoints: Sequence[str] | None = None
) -> Iterator[BenchMessage]:
    """The events of :func:`bench_events` one at a time, for more of them than fit in memory at once."""
    rng = random.Random(seed)  # noqa: S311 - reproducible load, not security
    away_every = 0 if misrouted <= 0 else round(1 / misrouted)
    hours = 240 if checkpoints else max(1, min(240, cells // 100))
    names = list(checkpoints) if checkpoints else [f"cp-{i:05d}" for i in range(max(1, cells // hours))]
    shipped = registered()
    for i in range(n):
        border = names[rng.randrange(len(names))]
        t = T0 + (i * hours * 3600) // n + rng.randrange(-600, 1)
        checkpoint = shipped.get(border)
        # a registered checkpoint's crossings are between its own countries: any other pair is dead-lettered, not counted
        if checkpoint is None:
            from_country, to_country = "RU", rng.choice(("GE", "KZ", "FI", "MN"))
        else:
            from_country, to_country = sorted(checkpoint.countries, key=lambda country: country != "RU")
        value = orjson.dumps(
            {
                "type": "crossing",
                "event_id": f"b-{seed}-{i}",
                "occurred_at": format_utc(t),
                "border": border,
                "from_country": from_country,
                "to_country": to_country,
                "count": rng.randint(1, 9),
            }
        )
        key = border.encode()
        partition = None
        if away_every and i % away_every == 0 and partitions > 1:
            partition = (partition_for_key(key, partitions) + 1 + rng.randrange(partitions - 1)) % partitions
        yield key, value, partition


async def prepare(
    bootstrap: str,
    topic: str,
    partitions: int,
    events: Iterable[BenchMessage],
    progress: Callable[[int], None],
    compression: str | None = "zstd",
    shape: InputShape = INPUT_SHAPES["borderflow"],
    connection: Mapping[str, Any] | None = None,
) -> None:
    """Publish ``events`` with the batching of ``shape`` and ``compression`` (acknowledged by all replicas, written once).

    ``connection``: TLS and SASL options of every client here (``client_options`` but the servers).
    """
    await create_topic(bootstrap, topic, partitions, **(connection or {}))
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        **(connection or {}),
        acks="all",
        enable_idempotence=True,
        linger_ms=shape.linger_ms,
        max_batch_size=shape.max_batch_size,
        compression_type=compression,
    )
    await producer.start()
    try:
        pending = []
        sent = 0
        for key, value, partition in events:
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            sent += 1
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
                progress(sent)
        await asyncio.gather(*pending)
        progress(sent)
    finally:
        await producer.stop()


async def bare_consumer(bootstrap: str, topic: str, expected: int, connection: Mapping[str, Any] | None = None) -> Result:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **(connection or {}),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await refresh_metadata(consumer)  # a fresh topic
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            seen += sum(len(records) for records in batch.values())
        return Result("bare aiokafka consumer", seen, time.perf_counter() - started)
    finally:
        await consumer.stop()


def core_only(values: list[bytes], batch: int = 5000) -> Result:
    """The pure core on the same events, no Kafka at all: the ceiling of borderflow's own code in one process."""
    from streams.core.config import CoreConfig
    from streams.core.effects import Effects
    from streams.core.state import PartitionState

    state = PartitionState("crossings", 0, "crossing", CoreConfig())
    started = time.perf_counter()
    for start in range(0, len(values), batch):
        effects = Effects()
        state.process_many([(offset, values[offset], -1) for offset in range(start, min(start + batch, len(values)))], effects)
        state.close_windows(effects)
        state.flush()
    return Result("pure core in process, no Kafka", len(values), time.perf_counter() - started)


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _messages_applied(url: str) -> int:
    """Messages the worker at ``url`` has applied, from its last applied offsets (bench topics start at offset 0).

    Polled every :data:`POLL_SECONDS` (the end is known to that precision):
    the worker's ``/metrics`` would cost it a rendering of every gauge each
    time, which the measurement would then include (Prometheus scrapes every
    15 s); this costs it one small JSON answer.
    """
    try:
        with urllib.request.urlopen(url + "/internal/offsets", timeout=5) as response:  # noqa: S310 - loopback
            offsets = orjson.loads(response.read()).get("answer") or {}  # none while starting or recovering
    except (OSError, orjson.JSONDecodeError):
        return 0
    return sum(offset + 1 for offset in offsets.values())


def _dead_letters(url: str) -> int:
    """The worker's dead letters so far, read once at the end from its ``/metrics``."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:  # noqa: S310 - loopback
        lines = response.read().decode().splitlines()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("borderflow_dead_letters_total{")))


def time_workers(
    bootstrap: str,
    prefix: str,
    expected: int,
    ports: list[int],
    partitions: int,
    timeout: float,
    forwarded: int = 0,
    settings: Mapping[str, str] | None = None,
) -> Result:
    """Real ``borderflow worker`` processes (one per port, one app), timed from their start to the last event processed.

    ``forwarded``: how many of the ``expected`` events are away from home, so
    read a second time once forwarded (the end is ``expected + forwarded`` messages).
    ``settings``: more ``BORDERFLOW_*`` variables for the workers.
    """
    messages = expected + forwarded
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    data_dirs = [Path(tempfile.mkdtemp(prefix="borderflow-bench-")) for _ in ports]
    started = time.perf_counter()
    workers = [
        WorkerProcess(
            env=worker_env(
                {
                    "BORDERFLOW_KAFKA": bootstrap,
                    "BORDERFLOW_TOPIC_PREFIX": prefix,
                    "BORDERFLOW_APP_ID": app_id,
                    "BORDERFLOW_WEB_PORT": str(port),
                    "BORDERFLOW_DATA_DIR": str(data_dir),
                    "BORDERFLOW_PARTITIONS": str(partitions),
                    **(settings or {}),
                }
            ),
            port=port,
            log=data_dir / "worker.log",
        ).start()
        for port, data_dir in zip(ports, data_dirs, strict=True)
    ]
    first = None
    done = 0.0
    peaks: dict[int, float] = {}
    try:
        while time.perf_counter() - started < timeout:
            done = sum(_messages_applied(worker.url) for worker in workers)
            for worker in workers:
                assert worker.process is not None
                peaks[worker.process.pid] = peak_rss_mb(worker.process.pid) or peaks.get(worker.process.pid, 0.0)
            if done and first is None:
                first = time.perf_counter() - started
            if done >= messages:
                break
            for worker in workers:
                worker.check_alive()
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - started
        dead_letters = sum(_dead_letters(worker.url) for worker in workers)
    finally:
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            worker.stop(60)  # the figures are taken: killed if it does not stop, never left behind
        for data_dir in data_dirs:
            shutil.rmtree(data_dir, ignore_errors=True)
    name = "borderflow worker" if len(ports) == 1 else f"borderflow, {len(ports)} workers"
    events = expected if done >= messages else int(done * expected / messages)
    return Result(name, events, elapsed, max(peaks.values(), default=None), first, dead_letters)


BASELINE = """
import sys, time, faust, orjson
bootstrap, topic, expected, partitions, datadir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
from streams.app.assembly import broker_credentials
from streams.settings import Settings
app = faust.App("bench-baseline-" + str(time.time_ns()), broker="kafka://" + bootstrap, store="memory://", web_enabled=False,
                broker_credentials=broker_credentials(Settings()),  # TLS and SASL from the BORDERFLOW_* variables given
                datadir=datadir, topic_partitions=partitions, value_serializer="raw", consumer_auto_offset_reset="earliest")
source = app.topic(topic, value_type=bytes, partitions=partitions)
counts = app.Table("counts", default=int, partitions=partitions)
seen = 0
started = None

@app.agent(source)
async def count(stream):
    global seen, started
    async for value in stream:
        if started is None:
            started = time.perf_counter()
        event = orjson.loads(value)
        hour = event["occurred_at"][:13]
        counts[event["border"] + "|" + hour] += event["count"]
        seen += 1
        if seen == expected:
            print(f"DONE {seen} {time.perf_counter() - started}", flush=True)

worker = faust.Worker(app, loglevel="ERROR", quiet=True, redirect_stdouts=False)
worker.execute_from_commandline()
"""


def run_baseline(
    bootstrap: str, topic: str, expected: int, partitions: int, timeout: float, settings: Mapping[str, str] | None = None
) -> Result:
    """The idiomatic Faust way: an agent updating a table per event. ``settings``: its ``BORDERFLOW_*`` TLS and SASL variables."""
    with tempfile.TemporaryDirectory(prefix="borderflow-baseline-") as workdir:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", BASELINE, bootstrap, topic, str(expected), str(partitions), workdir],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=worker_env(settings or {}),
        )
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:  # the baseline keeps running after it is done: read, then kill
                line = raw.decode(errors="replace")
                if "DONE " in line:  # Faust may put terminal escapes before it
                    _, seen, seconds = line[line.index("DONE ") :].split()
                    return Result("idiomatic Faust agent (table update per event)", int(seen), float(seconds))
            return Result("idiomatic Faust agent (table update per event)", 0, time.perf_counter() - started)
        finally:
            timer.cancel()
            process.kill()
            process.wait()


def figures_of(results: list[Result]) -> dict[str, object]:
    bare = next(r for r in results if r.name.startswith("bare"))
    baseline = next((r for r in results if r.name.startswith("idiomatic")), None)
    rows = []
    for r in results:
        row: dict[str, object] = asdict(r) | {"events_per_s": round(r.rate)}
        row["ratio_to_bare"] = round(r.rate / bare.rate, 4) if bare.rate else None
        drain = r.drain_rate
        row["drain_events_per_s"] = None if drain is None else round(drain)
        row["drain_ratio_to_bare"] = None if drain is None or not bare.rate else round(drain / bare.rate, 4)
        if baseline is not None and baseline.rate:
            row["speedup_over_baseline"] = round(r.rate / baseline.rate, 2)
        rows.append(row)
    return {"results": rows}

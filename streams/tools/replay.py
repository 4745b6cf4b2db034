"""Rebuilding the state from the input topics into a fresh app, and checking it against the live one.

A replay is an ordinary worker process under its own app id (so its own
consumer group, changelog and local state; the live workers are untouched)
that starts from the beginning of the input topics. This module starts it,
follows its progress up to the end offsets taken at the start, and for
``--verify`` compares it with the live workers partition by partition *at
the same offset*: both sides are asked for a snapshot right after applying
the same message, so events still arriving do not show as differences.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from streams.broker.embedded import free_port
from streams.core.verify import Difference, diff_partition
from streams.engine.seam import refresh_metadata
from streams.kafka.clients import client_options
from streams.settings import SECRET_FILES, Settings
from streams.tools.launch import WorkerProcess, WorkerStopped, worker_env

CONNECTION_VARIABLES = ("BORDERFLOW_SECURITY_PROTOCOL", "BORDERFLOW_SASL_", "BORDERFLOW_SSL_")


class ReplayError(RuntimeError):
    pass


def settings_env(settings: Settings) -> dict[str, str]:
    """``BORDERFLOW_*`` variables that reproduce ``settings`` in another process."""
    env = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None or (name in SECRET_FILES and getattr(settings, SECRET_FILES[name]) is not None):
            continue  # a secret read from a file: the other process reads the file too
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, timedelta):
            text = f"{int(value.total_seconds())}s"
        elif isinstance(value, datetime):
            text = value.isoformat()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"BORDERFLOW_{name.upper()}"] = text
    return env


def connection_env(settings: Settings) -> dict[str, str]:
    """The ``BORDERFLOW_*`` variables of how ``settings`` connect to Kafka (protocol, SASL, TLS), for another process."""
    return {name: value for name, value in settings_env(settings).items() if name.startswith(CONNECTION_VARIABLES)}


async def input_offsets(settings: Settings) -> tuple[dict[str, int], dict[str, int]]:
    """``topic|partition`` -> (first offset, end offset) of every input partition, as they are now."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_options(settings))
    await consumer.start()
    try:
        partitions: list[TopicPartition] = []
        for topic in settings.topics.inputs:
            found = consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            partitions.extend(TopicPartition(topic, p) for p in sorted(found))
        if not partitions:
            raise ReplayError(f"no input topics found on {settings.kafka} (prefix {settings.topic_prefix!r})")
        first = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return ({f"{tp.topic}|{tp.partition}": first[tp] for tp in partitions}, {f"{tp.topic}|{tp.partition}": end[tp] for tp in partitions})


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await refresh_metadata(consumer)
    return consumer.partitions_for_topic(topic) or set()


@dataclass
class ReplayProgress:
    """How far the replay is, from the offsets it has applied."""

    first: dict[str, int]
    end: dict[str, int]
    applied: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.end[tp] - self.first[tp] for tp in self.end)

    @property
    def done(self) -> int:
        return sum(max(0, min(self.applied.get(tp, -1) + 1, self.end[tp]) - self.first[tp]) for tp in self.end)

    @property
    def partitions_left(self) -> int:
        return sum(1 for tp in self.end if self.end[tp] > self.first[tp] and self.applied.get(tp, -1) < self.end[tp] - 1)

    @property
    def finished(self) -> bool:
        return self.partitions_left == 0


class ReplayWorker(WorkerProcess):
    """A ``borderflow worker`` process under the replay's own app id, on loopback."""

    def __init__(self, settings: Settings, app_id: str, data_dir: Path) -> None:
        port = free_port()
        env = worker_env(
            settings_env(settings)
            | {
                "BORDERFLOW_APP_ID": app_id,
                "BORDERFLOW_DATA_DIR": str(data_dir),
                "BORDERFLOW_WEB_HOST": "127.0.0.1",
                "BORDERFLOW_WEB_PORT": str(port),
                "BORDERFLOW_WORKER_ID": f"{app_id}-1",
                "BORDERFLOW_FORWARD": "false",  # the live workers forward events to their home partitions; the replay reads their copies
            }
        )
        env.pop("BORDERFLOW_INGEST_TOKEN", None)
        super().__init__(env=env, port=port, log=data_dir / "replay-worker.log")
        self.app_id = app_id
        self.data_dir = data_dir

    def check_alive(self) -> None:
        try:
            super().check_alive()
        except WorkerStopped as exc:
            raise ReplayError(f"replay worker: {exc}") from None

    def stop(self, timeout: float = 60) -> int | None:
        return super().stop(timeout)


async def get_json(session: aiohttp.ClientSession, url: str, params: list[tuple[str, str]] | None = None) -> Any:
    async with session.get(url, params=params) as response:
        if response.status != 200:
            raise ReplayError(f"{url} answered {response.status}: {(await response.text())[:300]}")
        return orjson.loads(await response.read())


async def follow(
    worker: ReplayWorker,
    progress: ReplayProgress,
    on_progress: Callable[[ReplayProgress], None],
    timeout: float,
    headers: dict[str, str] | None = None,
) -> None:
    """Wait until the replay worker is ready and has applied everything up to the end offsets.

    ``headers`` go with every request (the cluster secret: streams/web/access.py).
    """
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), headers=headers) as session:
        while True:
            worker.check_alive()
            if time.monotonic() > deadline:
                raise ReplayError(f"replay not finished within {timeout:g} s ({progress.done} of {progress.total} events)")
            try:
                progress.applied = await get_json(session, worker.url + "/internal/offsets", [("all", "1")])
            except (TimeoutError, aiohttp.ClientError, ReplayError):
                pass  # starting or recovering
            on_progress(progress)
            if progress.finished:
                return
            await asyncio.sleep(0.5)


async def verify(
    live_url: str, replay_url: str, bucket_seconds: int, attempts: int = 8, wait: float = 60, headers: dict[str, str] | None = None
) -> tuple[list[Difference], dict[str, int]]:
    """Differences between live and replay, each partition compared at an offset both have applied.

    Returns the differences and the offset each partition was compared at.
    """
    compared: dict[str, int] = {}
    differences: list[Difference] = []
    pending: set[str] | None = None
    timeout = aiohttp.ClientTimeout(total=wait + 30)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        for attempt in range(attempts):
            try:
                live_offsets, replay_offsets = await asyncio.gather(
                    get_json(session, live_url + "/internal/offsets", [("all", "1")]),
                    get_json(session, replay_url + "/internal/offsets", [("all", "1")]),
                )
            except ReplayError:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(3)  # a worker is recovering or rebalancing (503): ask again
                continue
            if pending is None:
                pending = set(live_offsets) | set(replay_offsets)
            targets = {tp: max(live_offsets.get(tp, -1), replay_offsets.get(tp, -1)) for tp in pending}
            for tp in [tp for tp, offset in targets.items() if offset < 0]:
                pending.discard(tp)  # no message on either side
                del targets[tp]
            if not targets:
                break
            params = [("at", f"{tp}|{offset}") for tp, offset in targets.items()] + [("wait", str(wait)), ("all", "1")]
            live, replay = await asyncio.gather(
                get_json(session, live_url + "/internal/snapshot", params),
                get_json(session, replay_url + "/internal/snapshot", params),
            )
            for tp, offset in targets.items():
                one, other = live.get(tp, {}), replay.get(tp, {})
                if one.get("status") == "ok" and other.get("status") == "ok":
                    differences.extend(diff_partition(tp, one, other, bucket_seconds))
                    compared[tp] = offset
                    pending.discard(tp)
            if not pending:
                break
    if pending:
        raise ReplayError(
            f"could not catch live and replay at a common offset for {sorted(pending)} after {attempts} attempts "
            "(is a live worker down or rebalancing?)"
        )
    return differences, compared

"""Creating topics, idempotently."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from streams.kafka.clients import client_options
from streams.settings import Settings


@dataclass(frozen=True, slots=True)
class TopicStatus:
    name: str
    partitions: int
    created: bool


log = logging.getLogger(__name__)
#: how long a created topic may take to appear in the metadata a broker answers with
TOPIC_METADATA_WAIT = 30.0


class TopicMismatch(RuntimeError):
    pass


class KafkaUnreachable(RuntimeError):
    pass


async def wait_for_topics(settings: Settings, timeout: float = 60.0) -> list[TopicStatus]:
    """:func:`ensure_topics`, retried while the brokers are not up yet (e.g. starting together)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await ensure_topics(settings)
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if isinstance(exc, TopicAlreadyExistsError) or time.monotonic() > deadline:
                raise KafkaUnreachable(f"cannot reach Kafka at {settings.kafka} to check the topics: {exc!r}") from exc
            log.warning("Kafka at %s not reachable yet (%r); retrying", settings.kafka, exc)
            await asyncio.sleep(2)


async def create_topic(bootstrap: str, name: str, partitions: int, replication: int = 1) -> None:
    """Create one topic (it must not exist yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication)])
    finally:
        await admin.close()


async def ensure_topics(settings: Settings) -> list[TopicStatus]:
    """Create missing topics; check that existing ones have the configured partitions."""
    topics = settings.topics
    names = topics.inputs + topics.outputs
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = await _partition_counts(admin, names)
        missing = [n for n in names if n not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication, topic_configs=topics.configs(name)) for name in missing]
                )
            except TopicAlreadyExistsError:
                pass  # created concurrently by another client
        counts = await _partition_counts(admin, names)
        deadline = time.monotonic() + TOPIC_METADATA_WAIT
        # Apache Kafka answers CreateTopics before every broker's metadata holds the new topics
        while any(counts.get(name, 0) == 0 for name in names) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            counts = await _partition_counts(admin, names)
    finally:
        await admin.close()
    result = []
    for name in names:
        n = counts.get(name, 0)
        if name in topics.inputs and n != settings.partitions:
            raise TopicMismatch(
                f"topic {name!r} has {n} partitions but BORDERFLOW_PARTITIONS is {settings.partitions}: "
                "every input topic and changelog must have the same count"
            )
        result.append(TopicStatus(name, n, name in missing))
    return result


async def _partition_counts(admin: AIOKafkaAdminClient, names: tuple[str, ...]) -> dict[str, int]:
    # describe only topics that exist: a metadata request may auto-create the others
    present = set(await admin.list_topics())
    names = tuple(n for n in names if n in present)
    if not names:
        return {}
    described = await admin.describe_topics(list(names))
    counts = {}
    for topic in described:
        partitions = topic.get("partitions") or []
        if topic.get("error_code", 0) == 0 and partitions and all(p.get("leader", -1) >= 0 for p in partitions):
            counts[topic["topic"]] = len(partitions)
    return counts

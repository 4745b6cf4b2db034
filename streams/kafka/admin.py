"""Creating topics, idempotently."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)

from streams.kafka.clients import client_options
from streams.kafka.connection import denial, refusal
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


class KafkaRefused(KafkaUnreachable):
    """The cluster answered and will not take these settings (credentials, certificates, protocol): retrying will not help."""


#: seconds a probe of one bootstrap address waits to connect, then for any answer
PROBE_TIMEOUT = 3.0
RETRY_PAUSE = 2.0


async def wait_for_topics(settings: Settings, timeout: float | None = None) -> list[TopicStatus]:
    """:func:`ensure_topics`, retried while the brokers are not up yet (e.g. starting together).

    Gives up after ``timeout`` seconds (``BORDERFLOW_STARTUP_TIMEOUT`` unless
    given) whatever the brokers do, even one that accepts connections and never
    answers, with :class:`KafkaUnreachable` naming each address and what it did.
    """
    limit = settings.startup_timeout.total_seconds() if timeout is None else timeout
    deadline = time.monotonic() + limit
    last: BaseException | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            return await asyncio.wait_for(ensure_topics(settings), timeout=remaining)
        except TimeoutError as exc:
            last = exc
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if isinstance(exc, TopicAlreadyExistsError):
                raise KafkaUnreachable(f"cannot check the topics at {settings.kafka}: {exc!r}") from exc
            if (cause := await refusal(settings)) is not None:
                raise KafkaRefused(f"Kafka refused the connection: {cause}") from None
            if isinstance(exc, KafkaError) and not exc.retriable:
                raise KafkaUnreachable(f"cannot check the topics at {settings.kafka}: {denial(exc)}") from None
            last = exc
            log.warning("Kafka at %s not reachable yet (%r); retrying for %.0f s more", settings.kafka, exc, remaining)
            await asyncio.sleep(min(RETRY_PAUSE, max(0.0, deadline - time.monotonic())))
    causes = "; ".join([f"{server}: {await probe(server)}" for server in settings.bootstrap_servers])
    raise KafkaUnreachable(
        f"Kafka at {settings.kafka} did not answer within {limit:g} s (BORDERFLOW_STARTUP_TIMEOUT): {causes}"
        + ("" if last is None or isinstance(last, TimeoutError) else f" (last error: {last!r})")
    )


async def probe(server: str, timeout: float = PROBE_TIMEOUT) -> str:
    """What a bootstrap address does to a TCP client: the cause to name when Kafka there does not answer."""
    host, _, port = server.rpartition(":")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), timeout)
    except TimeoutError:
        return f"no answer to a TCP connection within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused (nothing listens there)"
    except (OSError, ValueError) as exc:
        return f"cannot connect: {exc}"
    try:
        # an ApiVersions request (v0), which any Kafka broker answers
        request = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x0aborderflow"
        writer.write(len(request).to_bytes(4, "big") + request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4), timeout)
    except TimeoutError:
        return f"accepts TCP connections but sent no answer to a Kafka request within {timeout:g} s"
    except OSError as exc:
        return f"connection lost: {exc}"
    finally:
        writer.close()
    return "answered a Kafka request (it may have been starting)" if answer else "closed the connection without answering a Kafka request"


async def create_topic(bootstrap: str, name: str, partitions: int, replication: int = 1, **connection: Any) -> None:
    """Create one topic (it must not exist yet); ``connection``: TLS and SASL options (:func:`client_options` but the servers)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **connection)
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
                created = await admin.create_topics(
                    [NewTopic(name, settings.partitions, settings.replication, topic_configs=topics.configs(name)) for name in missing]
                )
            except TopicAlreadyExistsError:
                pass  # created concurrently by another client
            else:
                refuse_denied_topics(created, "DESCRIBE on TOPIC {name!r}, and CREATE too unless it exists (borderflow topics)")
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


class PermissionMissing(KafkaRefused):
    """The cluster does not allow this client's principal something it needs: the message names the ACL."""


def refuse_denied_topics(response: Any, needed: str) -> None:
    """Raise :class:`PermissionMissing` if a CreateTopics answer refused a topic for want of an ACL (``needed``, of ``name``)."""
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        if code == TopicAuthorizationFailedError.errno:
            refused = denial(TopicAuthorizationFailedError())
            raise PermissionMissing(f"Kafka refused topic {name!r} to this client: {refused}; needed: " + needed.format(name=name))


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

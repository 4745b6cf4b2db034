"""Known defects of the embedded broker (noida-db 0.2.3) and their workarounds, in one place.

A worker's assembly (``streams/app/``) depends on this module: which broker it
has, the static member id it joins with, the evictor. It depends only on the
Kafka clients and the settings (an import-linter contract in pyproject.toml),
apart from ``streams/broker/``, the brokers borderflow starts itself.

The workarounds that change what a worker does (eviction, leaving on stop)
run only when the broker is the embedded one. A worker learns which broker
it has at start (:func:`detect_broker`, or ``BORDERFLOW_BROKER=kafka|embedded``
to say so): Apache Kafka lists the admin requests ElectLeaders and
AlterPartitionReassignments in its ApiVersions answer (every broker since
Kafka 2.4, KRaft or not), noida-db lists neither. Whatever the broker
(``tests/e2e/test_broker_defects.py`` runs each defect's test on both, showing
the defect on the embedded broker and its absence on Apache Kafka).

Measured on this machine with plain aiokafka consumers as well as Faust workers
(tests in ``tests/e2e/test_broker_defects.py`` show each defect):

1. **Dead members are never evicted.** noida-db does not expire a member whose
   session times out. When a group member is SIGKILLed, a joining member waits
   the full rebalance timeout (Faust's default: 60 s; aiokafka's: 300 s) and is
   then elected follower of the dead leader: its SyncGroup never completes and
   it rejoins, same generation, every session timeout, forever. A surviving peer
   keeps its old partitions and the dead member's are never processed.
2. **Phantom members.** A member that rejoins under a new member id (after a
   failed commit, or the KIP-394 member-id handshake) leaves its old id in the
   group as a member that never answers, with the same effect.

3. **Fetch size limits are ignored.** A fetch returns every record from the
   requested offset to the end of the partition, whatever
   ``max_partition_fetch_bytes`` and ``fetch_max_bytes`` say. A worker catching
   up on a backlog holds the whole backlog of its partitions in memory at
   once (twice, briefly, while aiokafka copies each partition out of the
   response), where on real Kafka a fetch is bounded by
   ``consumer_max_fetch_size`` per partition (docs/benchmarks.md compares the
   two).
4. **Every write rewrites the whole store.** noida-db keeps all of its log in
   one JSON file (``kafka.json``, every byte of a record batch a JSON number,
   so about 3.5 bytes per byte) and replaces that file after writes: a single
   one-byte record costs a rewrite of everything the broker holds
   (docs/benchmarks.md measures it). On a 2-core
   machine that CPU is taken from whatever runs beside the broker, and a
   stream processor, which writes its changelog and results as it reads,
   keeps the broker rewriting for as long as it runs; a read-only consumer
   does not. Real Kafka appends to segment files.

Workarounds:

* **Compressed record batches** (``BORDERFLOW_COMPRESSION``, default
  ``zstd``): everything borderflow produces is compressed, and aiokafka keeps
  fetched batches compressed until it reads them, one batch at a time, so a
  backlog costs its compressed size (JSON events: about a sixth). This is the
  only bound available on the client side; events that other producers send
  uncompressed still cost their full size here. On real Kafka compression
  only saves network and disk.
* **Measuring on a quiet broker** (embedded broker only) (:meth:`streams.broker.embedded.EmbeddedBroker.wait_quiet`,
  defect 4): ``borderflow bench`` waits for the embedded broker to stop using
  CPU before each contestant, so that none pays for the rewrite an earlier
  one's writes (or the publishing) caused. A worker still pays for the
  rewrites its own writes cause while it runs: that cost is in its figures,
  and not on real Kafka.
* **Static membership** (KIP-345): every worker joins with a stable
  ``group.instance.id`` (:func:`group_instance_id`). A worker restarted under
  the same id takes its predecessor's place at once, and no phantom ids are
  left behind. On real Kafka this is also what avoids a rebalance on restart.
* **Evicting unreachable members** (:class:`DeadMemberEvictor`, embedded broker only): each worker
  periodically describes its group; a member whose advertised HTTP endpoint
  refuses connections, or answered once and then has been silent, for a whole
  session timeout is removed with a LeaveGroup request on its behalf (one
  that has been silent since it joined gets five minutes: :class:`EvictionPolicy`). Apache Kafka's
  coordinator expires a member after its session timeout, so on Apache Kafka
  the evictor does not run and sends nothing; ``BORDERFLOW_EVICT_DEAD_MEMBERS``
  overrides the choice either way.
* **Leaving on a clean stop** (:meth:`DeadMemberEvictor.leave`, embedded broker only):
  a worker that stops cleanly removes its own static member, so a worker started later under
  another id (a promoted replay) does not wait on it. Same switch. (On Apache Kafka a static
  member that stops is expired after its session timeout.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiokafka.client import AIOKafkaClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.protocol.admin import ApiVersionRequest, DescribeGroupsRequest
from aiokafka.protocol.group import LeaveGroupRequest

from streams.kafka.clients import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)
#: ElectLeaders and AlterPartitionReassignments: answered by every Apache Kafka broker since 2.4, not by noida-db
KAFKA_ONLY_APIS = frozenset({43, 45})
BrokerKind = Literal["kafka", "embedded"]


async def detect_broker(settings: Settings, timeout: float = 30.0) -> BrokerKind:
    """Which broker ``settings.kafka`` is, from the requests it says it answers (``BORDERFLOW_BROKER`` if set)."""
    if settings.broker != "auto":
        return settings.broker
    client = AIOKafkaClient(**client_options(settings))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout)
        response = await client.send(client.get_random_node(), ApiVersionRequest())
    finally:
        await client.close()
    answered = {api[0] for api in response.api_versions}
    return "kafka" if KAFKA_ONLY_APIS <= answered else "embedded"


def resolve_broker(settings: Settings) -> Settings:
    """``settings`` with ``broker`` detected and the eviction switch following it unless it was set."""
    loop = asyncio.new_event_loop()  # not asyncio.run: Faust's worker takes the thread's loop afterwards
    try:
        kind = loop.run_until_complete(detect_broker(settings))
    finally:
        loop.close()
    evict = settings.evict_dead_members if settings.evict_dead_members is not None else kind == "embedded"
    log.info("broker at %s: %s (evicting unreachable members: %s)", settings.kafka, kind, evict)
    return settings.model_copy(update={"broker": kind, "evict_dead_members": evict})


def group_instance_id(settings: Settings) -> str:
    """The worker's stable identity in its consumer group: ``BORDERFLOW_WORKER_ID``, else the host name, address and port.

    The address it advertises is part of it: hosts that share a host name
    (network namespaces, cloned machines) would otherwise claim one identity,
    and the broker fences all but the last of them.
    """
    if settings.worker_id:
        return settings.worker_id
    hostname = socket.gethostname()
    advertised = urlsplit(settings.canonical_url).hostname or ""
    shared = advertised in (hostname, "localhost", "::1") or advertised.startswith("127.")  # the same on every host: no help
    return "-".join(part for part in (hostname, "" if shared else advertised, str(settings.web_port)) if part)


def member_url(metadata: bytes) -> str | None:
    """The HTTP endpoint a Faust member advertises in its join metadata."""
    try:
        user_data = ConsumerProtocolMemberMetadata.decode(metadata).user_data
        url = orjson.loads(user_data).get("url")
    except Exception:  # noqa: BLE001 - a member that is not a Faust worker
        return None
    return str(url).rstrip("/") if url else None


class Answer(Enum):
    """What a member's advertised HTTP endpoint did when a sweep called it."""

    ANSWERED = "answered"  # any HTTP status: 503 while it recovers is an answer
    REFUSED = "refused"  # nothing listens at its address
    SILENT = "silent"  # no answer in time (a blocked event loop, a network in the way)


@dataclass
class EvictionPolicy:
    """Which members to evict, from what each sweep saw (pure, so it can be tested without a broker).

    A worker's HTTP server listens before its consumer joins the group, and
    answers (503) while it recovers. So a member whose address refuses
    connections for a session timeout has no process behind it: evicted,
    whether or not a sweep ever saw it answer (a worker that died before the
    first sweep that would have). A member that answered once and then is
    silent for a session timeout is dead too. One that has been silent since
    it joined gets ``join_grace``: it may be a worker whose event loop is busy
    loading its state, and evicting it sooner would restart that for ever.
    """

    session_timeout: float
    join_grace: float = 300.0
    first_seen: dict[str, float] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    unreachable_since: dict[str, float] = field(default_factory=dict)

    def decide(self, alive: dict[str, Answer], now: float) -> list[str]:
        """``alive``: member id -> its answer this sweep (members without a URL, and this worker, count as answered)."""
        evict = []
        for member_id, answer in alive.items():
            self.first_seen.setdefault(member_id, now)
            if answer is Answer.ANSWERED:
                self.answered.add(member_id)
                self.unreachable_since.pop(member_id, None)
                continue
            since = self.unreachable_since.setdefault(member_id, now)
            if answer is Answer.REFUSED or member_id in self.answered:
                if now - since >= self.session_timeout:
                    evict.append(member_id)
            elif now - self.first_seen[member_id] >= self.join_grace:
                evict.append(member_id)
        for member_id in [m for m in self.first_seen if m not in alive or m in evict]:
            self.first_seen.pop(member_id, None)
            self.unreachable_since.pop(member_id, None)
            self.answered.discard(member_id)
        return evict


@dataclass
class DeadMemberEvictor:
    settings: Settings
    own_url: str
    evicted: int = 0
    policy: EvictionPolicy = field(init=False)

    def __post_init__(self) -> None:
        self.policy = EvictionPolicy(self.settings.session_timeout.total_seconds())

    async def sweep(self) -> list[str]:
        """Evict members that are dead by :class:`EvictionPolicy`; return their ids."""
        async with self._group() as (members, remove):
            answers = await asyncio.gather(*(self._answers(url) for _, url in members))
            alive = {
                member_id: Answer.ANSWERED if url is None or url == self.own_url else answer
                for (member_id, url), answer in zip(members, answers, strict=True)
            }
            evict = self.policy.decide(alive, time.monotonic())
            for member_id in evict:
                await remove(member_id)
                self.evicted += 1
                log.warning("evicted unreachable group member %s (see streams/defects.py)", member_id)
            return evict

    async def leave(self) -> list[str]:
        """Remove this worker's own member from the group; called once its consumer has stopped.

        A static member does not leave its group when it stops (KIP-345), and
        this broker never expires it (defect 1). A worker started later under
        another ``group.instance.id`` (a promoted replay, a moved worker) would
        then wait forever on a member nobody can evict, since a joining worker
        serves no HTTP and runs no timers before its first assignment.
        """
        async with self._group() as (members, remove):
            mine = [member_id for member_id, url in members if url == self.own_url]
            for member_id in mine:
                await remove(member_id)
            return mine

    @contextlib.asynccontextmanager
    async def _group(self) -> AsyncIterator[tuple[list[tuple[str, str | None]], Callable[[str], Awaitable[Any]]]]:
        """The group's members as ``(member id, worker URL)``, and a way to remove one, over one client connection."""
        client = AIOKafkaClient(**client_options(self.settings))
        await client.bootstrap()
        try:
            node = await client.coordinator_lookup(0, self.settings.app_id)
            response = await client.send(node, DescribeGroupsRequest([self.settings.app_id]))
            members = [(m[0], member_url(m[3])) for group in response.groups for m in group[5]]

            async def remove(member_id: str) -> Any:
                return await client.send(node, LeaveGroupRequest(self.settings.app_id, member_id))

            yield members, remove
        finally:
            await client.close()

    @staticmethod
    async def _answers(url: str | None) -> Answer:
        if url is None:
            return Answer.ANSWERED
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
                async with session.get(url + "/health") as response:
                    return Answer.ANSWERED if response.status > 0 else Answer.SILENT
        except aiohttp.ClientConnectorError as exc:
            return Answer.REFUSED if isinstance(exc.os_error, ConnectionRefusedError) else Answer.SILENT
        except ConnectionRefusedError:
            return Answer.REFUSED
        except (TimeoutError, aiohttp.ClientError, OSError):
            return Answer.SILENT

"""The thin shell between Faust and the pure core: one input path, two entry points.

The agents hand each input partition's records to :meth:`Runtime.process_fetched`
(whole fetched batches) or :meth:`Runtime.process_batch` (Faust's per-message
path), which run them through the partition's
:class:`~streams.core.state.PartitionState` and write what changed to the
local store and the changelog, and what the batch produced (forwarded
copies, dead letters, window results), before the batch is marked
processed. Offsets are committed only after the producer is flushed: an
offset is never committed before the state changes it caused are in the
changelog.

The rest of the engine's jobs are in their own modules: the owned
partitions and their states (:mod:`~streams.engine.partitions`), standby
replicas (:mod:`~streams.engine.standbys`), replay snapshots
(:mod:`~streams.engine.snapshots`), gap re-reads
(:class:`~streams.engine.fastpath.GapGuard`) and what each output record
holds (:mod:`~streams.engine.codec`).
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import faust
from faust.types import TP, TableT
from faust.types.stores import StoreT

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from streams.engine import metrics
from streams.engine.checkpoint import Checkpoint
from streams.engine.codec import (
    NO_ORIGINAL,
    Original,
    Record,
    changelog_records,
    dead_letter_record,
    forwarded_copies,
    window_result_record,
)
from streams.engine.fastpath import Admission, FetchedBatch, GapGuard
from streams.engine.membership import GroupMembership, recovery_state
from streams.engine.output import DirectOutput
from streams.engine.partitions import OwnedPartitions
from streams.engine.seam import (
    BatchingConsumer,
    BuiltBatch,
    table_context,
    table_event,
    underlying_producer,
)
from streams.engine.snapshots import Snapshot, Snapshots
from streams.engine.standbys import StandbyReplicas
from streams.kafka.topics import Topics

log = logging.getLogger(__name__)

#: (offset, value, timestamp in ms) of an input record, as the core applies it
_applied_fields = operator.attrgetter("offset", "value", "timestamp")


@dataclass(frozen=True, slots=True)
class _MessageRecord:
    """A Faust message in the shape of aiokafka's bare records (timestamp in ms, -1 if none), so both inputs share one path."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, message: faust.types.Message) -> _MessageRecord:
        headers = message.headers
        pairs = cast(list[tuple[str, bytes]], list(headers.items()) if isinstance(headers, dict) else list(headers or ()))
        timestamp = -1 if message.timestamp is None else int(message.timestamp * 1000)
        return cls(message.offset, message.key, message.value, timestamp, pairs)


def _offsets_to_copy(effects: Effects) -> set[int]:
    """Offsets of the messages whose key and headers go out again: forwarded, or dead-lettered."""
    if not effects.forwards and not effects.dead_letters:
        return set()
    return {offset for offset, _ in effects.forwards} | {letter.offset for letter in effects.dead_letters}


def _copies_to(
    topic: str, partition: int, forwards: list[tuple[int, int]], originals: dict[int, Original], home: int
) -> tuple[list[Record], list[int | None]]:
    """The forwarded copies for ``home`` and their timestamps (run in the output's thread)."""
    return forwarded_copies(topic, partition, forwards, originals).get(home, ([], []))


def _original(record: Any) -> Original:
    timestamp = record.timestamp
    return record.key, record.value, list(record.headers or ()), timestamp if timestamp is not None and timestamp >= 0 else None


@dataclass(frozen=True, slots=True)
class _FetchAgain:
    offset: int
    #: records before the batch are missing (a GapGuard re-read); otherwise the batch itself was not applied
    gap: bool


def is_ready(app: faust.App) -> bool:
    """Recovered and not rebalancing: the tables are complete."""
    return recovery_state(app) is None


def _answered(snapshot: Snapshot) -> asyncio.Future[Snapshot]:
    future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
    future.set_result(snapshot)
    return future


class Runtime:
    """Applies input batches to the partitions this worker owns, and writes what they produced before they are committed."""

    def __init__(
        self,
        app: faust.App,
        config: CoreConfig,
        topics: Topics,
        state: TableT[bytes, bytes],
        ready: Callable[[], bool] = lambda: True,
        *,
        membership: GroupMembership | None = None,
        forward: bool = True,
    ) -> None:
        #: send events outside their home partition there (a verifying replay leaves that to the live workers)
        self.forward = forward
        self.topics = topics
        self.app = app
        self.state_table = state
        self.partitions = OwnedPartitions(app, config, topics, state, ready, membership)
        self.standbys = StandbyReplicas(app, topics, state, self.partitions)
        self.snapshots = Snapshots()
        self.changelog_topic = state.changelog_topic.get_topic_name()
        self.gaps = GapGuard()
        # Faust starts its producer after the app is built: look it up when sending
        self.output = DirectOutput(lambda: underlying_producer(app), BuiltBatch)
        self.checkpoint = Checkpoint(self.output, app.crash)
        self.checkpoint.on_failure(self.partitions.forget_all)

    def on_revoked(self, partitions: set[int]) -> None:
        self.gaps.forget(TP(topic, p) for topic in self.topics.inputs for p in partitions)
        self.partitions.revoke(partitions)
        self.snapshots.forget(partitions)

    # -- snapshots, for verifying a replay against the live state -------------
    def snapshot_at(self, topic: str, partition: int, offset: int) -> asyncio.Future[Snapshot]:
        """The partition's snapshot right after ``offset`` is applied (:meth:`Snapshots.request`).

        Resolves to ``{"status": "not-ready"}`` or ``{"status": "not-owned"}``
        at once when this worker cannot answer for the partition.
        """
        if self.partitions.unavailable() is not None:
            return _answered({"status": "not-ready"})
        if partition not in self.partitions.owned():
            return _answered({"status": "not-owned"})
        return self.snapshots.request(self.partitions.state_for(topic, partition), offset)

    # -- processing ------------------------------------------------------------
    async def process_batch(self, topic: str, events: Sequence[faust.types.EventT]) -> None:
        """A batch from a Faust stream (``take_events``): the per-message path, BORDERFLOW_FAST_PATH=false."""
        await self.checkpoint.section(self._process_batch(topic, events))

    async def process_fetched(self, batch: FetchedBatch) -> None:
        """A partition's fetched records (the fast path), marked processed once their state and output are written.

        A batch of a partition no longer owned is dropped. One that arrives
        while the worker is rebalancing or recovering is not applied (the
        state may be incomplete) and its partition is fetched again from the
        batch. One that starts after the state's next offset is dropped, and
        the partition read again from there (:class:`~streams.engine.fastpath.GapGuard`).
        """
        again = await self.checkpoint.section(self._process_fetched(batch))
        if again is None:
            return
        # outside the section: the consumer thread may be waiting on a rebalance that waits on it
        if again.gap:
            await self.gaps.read_again(cast(BatchingConsumer, self.app.consumer), batch.tp, again.offset)
        else:
            await cast(BatchingConsumer, self.app.consumer).rewind({batch.tp: again.offset})

    async def _process_batch(self, topic: str, events: Sequence[faust.types.EventT]) -> None:
        by_partition: dict[int, list[faust.types.Message]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event.message)
        for partition, messages in by_partition.items():
            context = table_event(self.app, messages[-1])
            await self._process(self.partitions.state_for(topic, partition), [_MessageRecord.of(m) for m in messages], context)

    async def _process_fetched(self, batch: FetchedBatch) -> _FetchAgain | None:
        """Apply the batch, or drop it; where to fetch its partition again from, if it must be."""
        consumer = cast(BatchingConsumer, self.app.consumer)
        if batch.tp not in consumer.assignment():
            return None
        if not (self.app.flow_control.is_active() and self.partitions.ready()):  # a rebalance or recovery: the state may be incomplete
            self.gaps.given_back(batch.tp, batch.records[0].offset)
            return _FetchAgain(batch.records[0].offset, gap=False)
        state = self.partitions.state_for(batch.tp.topic, batch.tp.partition)
        next_offset = state.progress.offset + 1
        admission = self.gaps.admit(batch.tp, next_offset, batch.records[0].offset, batch.reread_epoch, consumer.reread_epoch(batch.tp))
        if admission is Admission.DROP:
            return None
        if admission is Admission.REREAD:
            return _FetchAgain(self.gaps.next_needed(batch.tp, next_offset), gap=True)
        last = batch.records[-1]
        await self._process(state, batch.records, table_event(self.app, table_context(consumer, batch.tp, last)))
        consumer.mark_processed(batch.tp, last.offset)
        return None

    async def _process(self, state: PartitionState, records: Sequence[Any], context: faust.types.EventT) -> None:
        """Apply one partition's records (aiokafka's bare records, or :class:`_MessageRecord`) and send what they produced.

        The changed state goes to the local store under ``context`` (Faust's
        current event for the partition), then to the changelog.
        """
        effects = Effects()
        self.snapshots.apply(state, map(_applied_fields, records), effects)
        state.close_windows(effects)
        writes = state.flush()
        self.partitions.write(writes, context)
        metrics.observe_batch(state.event_type, effects)
        needed = _offsets_to_copy(effects)
        originals = {r.offset: _original(r) for r in records if r.offset in needed} if needed else {}
        await self._forward(state, originals, effects)
        await self._publish(state, writes, effects, originals)

    async def _forward(self, state: PartitionState, originals: dict[int, Original], effects: Effects) -> None:
        """Send the batch's events that are not at home here to their home partitions of the same topic.

        Each copy keeps the original's key, value, headers and timestamp (the
        future-time bound is judged on it), and names its origin in a header.
        The copies are made, batched and compressed in the output's thread
        while the next batch is applied; before the input is committed they
        are in the producer and their delivery is checked, like every output's.
        A copy delivered twice (forwarded again after a crash) is a duplicate
        at home, counted once.
        """
        if not self.forward or not effects.forwards:
            return
        by_home: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for offset, home in effects.forwards:
            by_home[home].append((offset, home))
        for home, forwards in by_home.items():
            await self.output.send_soon(state.topic, home, partial(_copies_to, state.topic, state.partition, forwards, originals, home))
        metrics.FORWARDED.labels(type=state.event_type).inc(len(effects.forwards))

    async def _publish(
        self, state: PartitionState, writes: list[tuple[bytes, bytes | None]], effects: Effects, originals: dict[int, Original]
    ) -> None:
        """The changelog of the state written, dead letters and final window counts, into the producer, in that order.

        The changelog goes to the partition of the same number as the input (the
        table is co-partitioned with it), with the progress record last; once
        delivered, the local store remembers how far it holds the changelog, so
        recovery after a clean restart reads only what came after.
        """
        topic, partition = state.topic, state.partition
        changelog = self.changelog_topic
        store = cast(StoreT, self.state_table.data)
        changelog_tp = TP(changelog, partition)
        await self.output.send(
            changelog,
            partition,
            changelog_records(writes),
            exact=True,
            on_delivered=lambda offset: store.set_persisted_offset(changelog_tp, offset),
        )
        letters = []
        for letter in effects.dead_letters:
            letters.append(dead_letter_record(topic, partition, letter, originals.get(letter.offset, NO_ORIGINAL)))
            metrics.DEAD_LETTERS.labels(reason=letter.reason.split(":")[0]).inc()
        await self.output.send(self.topics.dead_letters, partition, letters)
        results = [window_result_record(topic, partition, result) for result in effects.results]
        await self.output.send(self.topics.window_results, partition, results)

    def describe(self) -> dict[str, Any]:
        ownership = self.partitions.ownership()
        described: dict[str, Any] = {"partitions": sorted(ownership.partitions), "generation": ownership.generation}
        if ownership.unavailable is not None:
            described["reason"] = ownership.unavailable
        return described

"""The thin shell between Faust and the pure core.

The agents hand batches of events to :meth:`Runtime.process_batch`, which runs
them through each partition's :class:`~streams.core.state.PartitionState` and writes
what changed to the Faust tables (so to their changelog topics) before the
batch is acknowledged. Faust commits input offsets only for acknowledged
events, after flushing the producer: an offset is never committed before the
state changes it caused are in the changelog.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import TP, TableT
from faust.types.stores import StoreT

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.ownership import standby_lag
from streams.core.records import key_prefix, state_prefix
from streams.core.state import PartitionState
from streams.engine import metrics
from streams.engine.checkpoint import Checkpoint
from streams.engine.codec import (
    NO_ORIGINAL,
    Original,
    changelog_records,
    dead_letter_record,
    forwarded_copies,
    window_result_record,
)
from streams.engine.fastpath import Admission, FetchedBatch, GapGuard
from streams.engine.membership import GroupMembership, Ownership, recovery_state
from streams.engine.output import DirectOutput
from streams.engine.seam import (
    BatchingConsumer,
    as_current_event,
    changelog_marks,
    partition_rows,
    table_context,
    table_event,
    underlying_producer,
)
from streams.engine.snapshots import Snapshot, Snapshots
from streams.kafka.topics import Topics

log = logging.getLogger(__name__)
#: seconds a standby replica's states, once read from the store, are answered from before being read again
STANDBY_REFRESH = 1.0
#: seconds the changelog ends and committed input offsets that show a standby replica current are used before asking again
STANDBY_MARKS_TTL = 1.0
#: seconds to wait for them; without them no standby replica is offered
STANDBY_MARKS_TIMEOUT = 3.0


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


class NotReady(RuntimeError):
    """The worker is recovering or rebalancing: its tables may be incomplete, so nothing is read from them."""


@dataclass(frozen=True, slots=True)
class Standby:
    """The states of one partition as this worker's standby replica of it has them."""

    partition: int
    #: the last changelog offset applied to the replica when the states were read
    offset: int
    read_at: float
    states: list[PartitionState]


@dataclass(frozen=True, slots=True)
class _StandbyMarks:
    """What a standby replica is measured against, as the broker said at ``at``."""

    at: float
    #: changelog partition -> the offset its next record will get
    ends: dict[int, int]
    #: (input topic, partition) -> the owner's committed offset (the next to read), None if none
    committed: dict[tuple[str, int], int | None]


class Runtime:
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
        self._ready = ready
        #: whether what this worker owns may be presented as current (None: only readiness counts)
        self.membership = membership
        #: send events outside their home partition there (a verifying replay leaves that to the live workers)
        self.forward = forward
        self.topics = topics
        self.app = app
        self.config = config
        self.state_table = state
        self.states: dict[tuple[str, int], PartitionState] = {}
        self.snapshots = Snapshots()
        self.changelog_topic = state.changelog_topic.get_topic_name()
        self.gaps = GapGuard()
        # Faust starts its producer after the app is built: look it up when sending
        self.output = DirectOutput(lambda: underlying_producer(app))
        self.checkpoint = Checkpoint(self.output, app.crash)
        self.checkpoint.on_failure(self.states.clear)  # what memory holds may be ahead of the store
        self._standbys: dict[int, Standby] = {}
        self._marks: _StandbyMarks | None = None
        self._marks_lock = asyncio.Lock()

    # -- ownership -----------------------------------------------------------
    def on_revoked(self, partitions: set[int]) -> None:
        self.gaps.forget(TP(topic, p) for topic in self.topics.inputs for p in partitions)
        for tp in [tp for tp in self.states if tp[1] in partitions]:
            del self.states[tp]
        self.snapshots.forget(partitions)

    def owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic in self.topics.inputs}

    def unavailable(self) -> str | None:
        """Why this worker's state must not be read as current now, or None."""
        if self.membership is not None:
            return self.membership.unavailable()
        return None if self._ready() else "recovering its state or rebalancing"

    def ownership(self) -> Ownership:
        """The partitions this worker owns, the group generation it owns them in, and whether it can serve them."""
        generation = self.membership.generation if self.membership is not None else 0
        return Ownership(generation, frozenset(self.owned_partitions()), self.unavailable())

    def local_states(self) -> list[PartitionState]:
        """States of the partitions this worker owns, loading any not yet loaded.

        Raises :class:`NotReady` while the tables are being recovered (a state
        loaded then would be cached incomplete and counted on from there), and
        while this worker may no longer be a member of its group.
        """
        reason = self.unavailable()
        if reason is not None:
            raise NotReady(f"this worker is {reason}; retry shortly")
        owned = self.owned_partitions()
        for tp in [tp for tp in self.states if tp[1] not in owned]:
            del self.states[tp]
        missing = [(t, p) for t in self.topics.inputs for p in owned if (t, p) not in self.states]
        if missing:
            self._load(missing)
        return [s for s in self.states.values() if s.partition in owned]

    async def standbys(self) -> list[tuple[Standby, int]]:
        """Each standby replica this worker keeps that is shown current, with how many changelog records it lags.

        A replica counts only when its lag is measured against the changelog's
        end offset as the broker reports it, and its state has applied
        everything its partition's owner committed (:func:`standby_lag`):
        one that cannot be shown so is left out, and its partition stays
        missing rather than answered short. Both marks are asked of the broker
        at most once every :data:`STANDBY_MARKS_TTL` (again at once when a
        replica has passed them). A replica's states are read from the store
        again only when it has applied more records and
        :data:`STANDBY_REFRESH` has passed since the last read, so a stream of
        queries during a restart costs one read a second per partition.
        """
        if self.unavailable() is not None:
            return []
        held = sorted(tp.partition for tp in self.app.assignor.assigned_standbys() if tp.topic == self.changelog_topic)
        for partition in [p for p in self._standbys if p not in held]:
            del self._standbys[partition]
        if not held:
            return []
        marks = await self._standby_marks(held, fresh=False)
        if marks is None or self.unavailable() is not None:
            return []
        measured = {p: self._measured_standby(p, marks) for p in held}
        if any(applied is not None and applied >= marks.ends.get(p, 0) for p, (_, _, applied) in measured.items()):
            marks = await self._standby_marks(held, fresh=True)  # the replica is ahead of the ends last asked for
            if marks is None or self.unavailable() is not None:
                return []
            measured = {p: self._measured_standby(p, marks) for p in held}
        return [(replica, lag) for replica, lag, _ in measured.values() if replica is not None and lag is not None]

    async def _standby_marks(self, partitions: list[int], *, fresh: bool) -> _StandbyMarks | None:
        """The changelog ends and committed input offsets of ``partitions``, at most :data:`STANDBY_MARKS_TTL` old.

        None when the broker did not tell them in time.
        """
        async with self._marks_lock:
            now = asyncio.get_running_loop().time()
            marks = self._marks
            if marks is None or fresh or now - marks.at > STANDBY_MARKS_TTL or not set(partitions) <= marks.ends.keys():
                changelog = [TP(self.changelog_topic, p) for p in partitions]
                inputs = [TP(topic, p) for topic in self.topics.inputs for p in partitions]
                try:
                    ends, committed = await asyncio.wait_for(changelog_marks(self.app.consumer, changelog, inputs), STANDBY_MARKS_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - any failure only means no replica can be shown current
                    log.warning("standby replicas not offered: the changelog ends or committed offsets could not be read (%r)", exc)
                    return None
                marks = self._marks = _StandbyMarks(
                    now,
                    {tp.partition: end for tp, end in ends.items() if end is not None},
                    {(tp.topic, tp.partition): offset for tp, offset in committed.items()},
                )
            return marks

    def _measured_standby(self, partition: int, marks: _StandbyMarks) -> tuple[Standby | None, int | None, int | None]:
        """The replica of ``partition`` as last read, its lag by ``marks`` (None: not shown current), and its store's offset."""
        applied = self.state_table.persisted_offset(TP(self.changelog_topic, partition))
        if applied is None:
            return None, None, None
        now = asyncio.get_running_loop().time()
        cached = self._standbys.get(partition)
        if cached is None or (cached.offset != applied and now - cached.read_at >= STANDBY_REFRESH):
            cached = self._standbys[partition] = Standby(partition, applied, now, self._read_standby(partition))
        lag = self._standby_lag(cached, marks)
        if lag is None and cached.offset != applied:  # the states last read may be what fell short: read them again first
            cached = self._standbys[partition] = Standby(partition, applied, now, self._read_standby(partition))
            lag = self._standby_lag(cached, marks)
        return cached, lag, applied

    def _standby_lag(self, replica: Standby, marks: _StandbyMarks) -> int | None:
        return standby_lag(
            replica.offset,
            marks.ends.get(replica.partition),
            {state.topic: state.progress.offset for state in replica.states},
            {topic: marks.committed.get((topic, replica.partition)) for topic in self.topics.inputs},
        )

    def _read_standby(self, partition: int) -> list[PartitionState]:
        tps = [(topic, partition) for topic in self.topics.inputs]
        return list(self._states_from(tps, partition_rows(self.state_table, partition)).values())

    def _load(self, tps: Sequence[tuple[str, int]]) -> None:
        self.states.update(self._states_from(tps, self.state_table.data.items()))

    def _states_from(
        self, tps: Sequence[tuple[str, int]], table_rows: Iterable[tuple[bytes, bytes]]
    ) -> dict[tuple[str, int], PartitionState]:
        """The states of ``tps`` built from the rows of theirs among ``table_rows``."""
        prefixes = {prefix: tp for tp in tps for prefix in state_prefix(*tp)}
        rows: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in table_rows:
            tp = prefixes.get(key_prefix(key))
            if tp is not None:
                rows[tp].append((key, value))
        states = {}
        for tp in tps:
            state = PartitionState(tp[0], tp[1], self.topics.type_of(tp[0]), self.config)
            state.load(rows[tp])
            states[tp] = state
        return states

    def _state_for(self, topic: str, partition: int) -> PartitionState:
        state = self.states.get((topic, partition))
        if state is None:
            self._load([(topic, partition)])
            state = self.states[(topic, partition)]
        return state

    # -- snapshots, for verifying a replay against the live state -------------
    def snapshot_at(self, topic: str, partition: int, offset: int) -> asyncio.Future[Snapshot]:
        """The partition's snapshot right after ``offset`` is applied (:meth:`Snapshots.request`).

        Resolves to ``{"status": "not-ready"}`` or ``{"status": "not-owned"}``
        at once when this worker cannot answer for the partition.
        """
        if self.unavailable() is not None:
            return _answered({"status": "not-ready"})
        if partition not in self.owned_partitions():
            return _answered({"status": "not-owned"})
        return self.snapshots.request(self._state_for(topic, partition), offset)

    def offsets(self) -> dict[str, int]:
        """``topic|partition -> last applied offset`` for the partitions this worker owns."""
        return {f"{state.topic}|{state.partition}": state.progress.offset for state in self.local_states()}

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
            await self._read_again(batch.tp, again.offset)
        else:
            await cast(BatchingConsumer, self.app.consumer).rewind({batch.tp: again.offset})

    async def _read_again(self, tp: TP, next_offset: int) -> None:
        consumer = cast(BatchingConsumer, self.app.consumer)
        rereads = self.gaps.rereads.get(tp, 0)
        target = next_offset
        if rereads > 1:  # the same hole after a re-read: has retention deleted those records?
            try:
                log_start = await asyncio.wait_for(consumer.log_start(tp), timeout=10)
            except Exception as exc:  # noqa: BLE001 - the broker is away: read again from the state, and ask next time
                log.info("%s: could not ask where the log starts: %r", tp, exc)
            else:
                self.gaps.log_starts_at(tp, log_start)
                target = max(next_offset, log_start)
        (log.warning if rereads > 3 else log.info)(
            "%s: the state ends before %d: reading again from %d (%d time(s))", tp, next_offset, target, rereads
        )
        try:
            await consumer.reread(tp, target)
        except Exception as exc:  # noqa: BLE001 - the consumer is stopping: its partitions start from the committed offsets next time
            log.info("%s: could not read again from %d: %r", tp, target, exc)

    async def _process_batch(self, topic: str, events: Sequence[faust.types.EventT]) -> None:
        by_partition: dict[int, list[faust.types.Message]] = defaultdict(list)
        for event in events:
            by_partition[event.message.partition].append(event.message)
        for partition, messages in by_partition.items():
            context = table_event(self.app, messages[-1])
            await self._process(self._state_for(topic, partition), [_MessageRecord.of(m) for m in messages], context)

    async def _process_fetched(self, batch: FetchedBatch) -> _FetchAgain | None:
        """Apply the batch, or drop it; where to fetch its partition again from, if it must be."""
        consumer = cast(BatchingConsumer, self.app.consumer)
        if batch.tp not in consumer.assignment():
            return None
        if not (self.app.flow_control.is_active() and self._ready()):  # a rebalance or recovery: the state may be incomplete
            return _FetchAgain(batch.records[0].offset, gap=False)
        state = self._state_for(batch.tp.topic, batch.tp.partition)
        next_offset = state.progress.offset + 1
        admission = self.gaps.admit(batch.tp, next_offset, batch.records[0].offset, batch.reread_epoch, consumer.reread_epoch(batch.tp))
        if admission is Admission.DROP:
            return None
        if admission is Admission.REREAD:
            return _FetchAgain(next_offset, gap=True)
        last = batch.records[-1]
        await self._process(state, batch.records, table_event(self.app, table_context(consumer, batch.tp, last)))
        consumer.mark_processed(batch.tp, last.offset)
        return None

    async def _process(self, state: PartitionState, records: Sequence[Any], context: faust.types.EventT) -> None:
        """Apply one partition's records (aiokafka's bare records, or :class:`_MessageRecord`) and send what they produced.

        The changed state goes to the local store under ``context``, Faust's
        current event for the partition, then to the changelog.
        """
        effects = Effects()
        self.snapshots.apply(state, map(_applied_fields, records), effects)
        state.close_windows(effects)
        writes = state.flush()
        self._write_store(writes, context)
        metrics.observe_batch(state.event_type, effects)
        needed = _offsets_to_copy(effects)
        originals = {r.offset: _original(r) for r in records if r.offset in needed} if needed else {}
        await self._forward(state, originals, effects)
        await self._publish(state, writes, effects, originals)

    def _write_store(self, writes: list[tuple[bytes, bytes | None]], context: faust.types.EventT) -> None:
        store = self.state_table.data
        with as_current_event(context):  # the store picks the partition's database from the current event
            for key, value in writes:
                if value is not None:
                    store[key] = value
                elif key in store:
                    del store[key]

    async def _forward(self, state: PartitionState, originals: dict[int, Original], effects: Effects) -> None:
        """Send the batch's events that are not at home here to their home partitions of the same topic.

        Each copy keeps the original's key, value, headers and timestamp (the
        future-time bound is judged on it), and names its origin in a header.
        Delivery is checked before the input is committed, like every output;
        a copy delivered twice (forwarded again after a crash) is a duplicate
        at home, counted once.
        """
        if not self.forward or not effects.forwards:
            return
        for home, (records, stamps) in forwarded_copies(state.topic, state.partition, effects.forwards, originals).items():
            await self.output.send(state.topic, home, records, exact=True, timestamps=stamps)
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
        ownership = self.ownership()
        described: dict[str, Any] = {"partitions": sorted(ownership.partitions), "generation": ownership.generation}
        if ownership.unavailable is not None:
            described["reason"] = ownership.unavailable
        return described

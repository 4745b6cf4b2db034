"""Input in whole fetched batches: Faust's consumer, agents and tables, without its per-message path.

Faust hands every fetched record to the conductor one at a time: a Message,
``wait_first`` with two new tasks, an Event, a queue hop and an ack, each per
message, with the rest of the fetch waiting behind it (docs/benchmarks.md).
Here the consumer hands each input partition's fetched records as one
:class:`FetchedBatch` to an agent's in-memory channel. The agent runs them
through the pure core, writes the changed state to the table, and only then
marks the partition processed through the batch's last offset. Commits take
their offsets from that mark, after flushing the producer as Faust always
does, so an offset is never committed before the state it changed is in the
changelog.

Everything else stays Faust's: group membership, assignment (the table
co-partitioned with the inputs), flow control on rebalance, changelogs,
recovery (changelog records still take the per-message path), commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

import faust
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.structs import ConsumerRecord
from faust.tables import TableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from streams.engine.checkpoint import Checkpoint


class _BareRecords(aiokafka_fetcher.PartitionRecords):
    """aiokafka's records of one fetched partition, yielded as the record objects its batch reader makes.

    aiokafka wraps every record in a ``ConsumerRecord`` (a dataclass of eleven
    fields, built in Python, in the consumer thread that shares the GIL with
    the event loop), a large share of what the bare consumer spends on a
    record (docs/benchmarks.md). Input batches only need offset, key, value and
    headers, which the reader's records already have; Faust's message for the
    table context is built from the last record alone (:func:`consumer_record`).
    Everything else (CRC checks, aborted transactions, control batches, the
    fetch position) is aiokafka's own code. This leans on aiokafka's internals
    (pinned in pyproject.toml); tests/integration/test_bare_records.py checks
    that the records carry what a ConsumerRecord would.
    """

    def __iter__(self) -> Iterator[Any]:
        return self._records_iterator  # skip the __next__ wrapper per record

    def _consumer_record(self, tp: TP, record: Any) -> Any:
        return record


class _PartitionRecordsFor:
    """What aiokafka's fetcher builds for each fetched partition: bare records for ``topics``, its own for the rest."""

    def __init__(self, topics: frozenset[str], standard: type) -> None:
        self.topics = topics
        self.standard = standard

    def __call__(self, tp: TP, records: Any, aborted: Any, fetch_offset: int, key_de: Any, value_de: Any, *rest: Any) -> Any:
        if tp.topic in self.topics and key_de is None and value_de is None:
            return _BareRecords(tp, records, aborted, fetch_offset, key_de, value_de, *rest)
        return self.standard(tp, records, aborted, fetch_offset, key_de, value_de, *rest)


def read_bare(topics: Iterable[str]) -> None:
    """Have aiokafka's fetchers in this process yield bare records for ``topics`` (:class:`_BareRecords`).

    Process-wide: a worker process has one consumer, Faust's.
    """
    current = aiokafka_fetcher.PartitionRecords
    standard = current.standard if isinstance(current, _PartitionRecordsFor) else current
    aiokafka_fetcher.PartitionRecords = _PartitionRecordsFor(frozenset(topics), standard)


def consumer_record(tp: TP, record: Any) -> ConsumerRecord[bytes, bytes]:
    """The ``ConsumerRecord`` aiokafka would have made of a bare record."""
    key, value = record.key, record.value
    return ConsumerRecord(
        tp.topic,
        tp.partition,
        record.offset,
        record.timestamp,
        record.timestamp_type,
        key,
        value,
        record.checksum,
        -1 if key is None else len(key),
        -1 if value is None else len(value),
        tuple(record.headers),
    )


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """One partition's records from one fetch, in offset order (with offset, key, value, headers: :class:`_BareRecords`)."""

    tp: TP
    records: list[Any]
    #: how many times borderflow had asked the consumer to re-read this partition when it was fetched
    reread_epoch: int = 0


class Admission(Enum):
    APPLY = "apply"
    DROP = "drop"  # fetched before the last re-read of its partition: the re-read brings these records again
    REREAD = "reread"  # records are missing before this batch: seek back and fetch them


class GapGuard:
    """Keeps a partition's state contiguous with its input, whatever seeks Faust and aiokafka make or skip.

    A batch must start at most one offset after the last one the state
    applied; one that starts later would have the state skip the records in
    between for ever (they would count as already applied). That happens when
    a rewind (:meth:`BatchingConsumer.rewind`) lands after a rebalance has
    sent the partition back further, and when the state recovered is behind
    the committed offset. Then the partition is read again from the state's
    next offset (which the caller raises to the log's first offset: records deleted by
    retention are gone for good). Batches fetched before that seek are
    dropped; a hole inside the log, which borderflow's producers never make,
    would be read again and again, and is logged each time rather than
    skipped.
    """

    def __init__(self) -> None:
        self.rereads: dict[TP, int] = {}
        self._log_starts: dict[TP, int] = {}

    def log_starts_at(self, tp: TP, offset: int) -> None:
        """Records below ``offset`` are no longer in ``tp``'s log (retention): no batch can bring them."""
        self._log_starts[tp] = max(offset, self._log_starts.get(tp, 0))

    def admit(self, tp: TP, next_offset: int, first_offset: int, batch_epoch: int, current_epoch: int) -> Admission:
        if first_offset <= max(next_offset, self._log_starts.get(tp, 0)):
            self.rereads.pop(tp, None)
            return Admission.APPLY
        if batch_epoch != current_epoch:
            return Admission.DROP
        self.rereads[tp] = self.rereads.get(tp, 0) + 1
        return Admission.REREAD

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.rereads.pop(tp, None)
            self._log_starts.pop(tp, None)


class BatchChannel(faust.Channel):
    """The agent's channel of fetched batches, whose queue keeps what it holds when flow resumes.

    Faust clears a channel's queue whenever flow resumes, at the end of every
    rebalance and recovery: queued batches would vanish silently, with the
    consumer's position already past their records, and a partition with
    nothing newer would never be read again. Here every queued batch reaches
    the agent, which drops those of partitions it no longer owns and has the
    rest fetched again if it cannot apply them yet (:meth:`BatchingConsumer.rewind`).
    Batches are put as plain values, so Faust's stream does not skip them
    on a generation change either.
    """

    @property
    def queue(self) -> Any:
        if self._queue is None:
            maxsize = self.app.conf.stream_buffer_maxsize if self.maxsize is None else self.maxsize
            self._queue = self.app.FlowControlQueue(maxsize=maxsize, clear_on_resume=False)
        return self._queue


class BatchInputs:
    """Which topics bypass the per-message path, and what receives their batches."""

    def __init__(self, topics: Iterable[str], deliver: Callable[[FetchedBatch], Awaitable[None]], busy: asyncio.Lock) -> None:
        self.topics = frozenset(topics)
        self.deliver = deliver
        #: held by the agent while it applies a batch
        self.busy = busy


async def _queued(inputs: BatchInputs, batch: FetchedBatch) -> bool:
    """Put the batch on the agent's channel: False if the queue cancelled the put (a cleared queue cancels its putters)."""
    try:
        await inputs.deliver(batch)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # this put itself was cancelled: pass it on
            raise
        return False
    return True


class BatchingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, delivering input topics in whole batches and committing what was processed."""

    #: how long a stopping worker waits for the consumer thread; the rest of the wait is aiokafka retrying an absent broker
    THREAD_SHUTDOWN_SECONDS = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reread_epochs: dict[TP, int] = {}

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        thread = super()._new_consumer_thread()
        thread.shutdown_timeout = self.THREAD_SHUTDOWN_SECONDS  # mode's default, 60 s, is all a SIGTERM waits when Kafka is down
        return thread

    def reread_epoch(self, tp: TP) -> int:
        return self._reread_epochs.get(tp, 0)

    async def log_start(self, tp: TP) -> int:
        """The first offset still in ``tp``'s log."""
        return (await self.earliest_offsets(tp)).get(tp) or 0

    async def reread(self, tp: TP, offset: int) -> None:
        """Fetch ``tp`` again from ``offset`` (:meth:`rewind`); batches fetched before this are stamped with an older epoch."""
        self._reread_epochs[tp] = self.reread_epoch(tp) + 1  # before the seek is queued: no fetch queued later predates it
        await self.rewind({tp: offset})

    def mark_processed(self, tp: TP, offset: int) -> None:
        """Everything up to ``offset`` in ``tp`` is applied and its state queued to the changelog (the checkpoint's mark)."""
        self._checkpoint().processed(tp, offset)
        self._acked[tp]  # noqa: B018 - the commit loop visits the partitions found here

    def _checkpoint(self) -> Checkpoint:
        return cast(Checkpoint, self.app.checkpoint)  # type: ignore[attr-defined]  # set by create_app

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        checkpoint: Checkpoint | None = getattr(self.app, "checkpoint", None)
        if checkpoint is not None:  # what the offsets cover must have reached Kafka, the direct output included
            await checkpoint.before_commit(self.app.producer.flush)
        return await super()._commit_offsets(offsets, start_new_transaction)

    def _new_offset(self, tp: TP) -> int | None:
        checkpoint: Checkpoint | None = getattr(self.app, "checkpoint", None)
        offset = None if checkpoint is None else checkpoint.commit_offset(tp)
        return offset if offset is not None else super()._new_offset(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        inputs: BatchInputs | None = getattr(self.app, "batch_inputs", None)
        if inputs is None:
            await super().on_partitions_revoked(revoked)
            return
        # No batch may run from here until flow stops (inside Faust's revocation): one that did
        # would write state the partitions' next owner may never read, and mark it processed.
        async with inputs.busy:
            await self.app.producer.flush()
            self._checkpoint().forget(revoked)
            await super().on_partitions_revoked(revoked)

    async def rewind(self, first_offsets: Mapping[TP, int]) -> None:
        """Fetch these input partitions again from these offsets: records fetched and not handed on must come back.

        aiokafka's position is already past them, and nothing else is sure to
        send it back: Faust seeks to the committed offset, which a new group
        (or a broker that lost its offsets) does not have, and the agent's
        :class:`GapGuard` only acts when a later batch arrives, which may
        never happen. Seeking an input partition is always safe: records
        before the state's next offset are skipped by offset, and a gap is
        read again. Partitions no longer assigned are left alone (their next
        assignment starts from the committed offsets). The seeks run in the
        consumer thread, between its fetches: a seek from this thread could
        be undone by a fetch under way there.
        """
        aiokafka_consumer = self._thread._ensure_consumer()  # noqa: SLF001 - Faust's consumer thread owns it

        async def seek_assigned() -> None:
            assigned = aiokafka_consumer.assignment()
            for tp, offset in first_offsets.items():
                if tp in assigned:
                    aiokafka_consumer.seek(tp, offset)

        await self._thread.call_thread(seek_assigned)
        for tp, offset in first_offsets.items():
            self._read_offset[tp] = offset if offset else None

    def _batches_of(
        self, records: Mapping[TP, list[Any]], active: set[TP] | None, generation: int, inputs: BatchInputs
    ) -> Iterator[tuple[TP, list[Any]]]:
        """Each partition's records, while still in ``generation`` and its partition active.

        Changelog records read before are left out (Faust's read-offset rule).
        Input records not yielded are rewound by the caller.
        """
        read_offset = self._read_offset
        for tp, tp_records in records.items():
            if not self.flow_active or self.app.consumer_generation_id != generation:
                return
            if not tp_records or (active is not None and tp not in active and tp not in self._buffered_partitions):
                continue
            if tp.topic in inputs.topics:
                yield tp, tp_records
                continue
            last_read = read_offset[tp]
            unread = tp_records
            if last_read is not None and tp_records[0].offset < last_read:
                unread = [record for record in tp_records if record.offset >= last_read]
            if unread:
                yield tp, unread

    async def _drain_messages(self, fetcher: Any) -> None:  # the loop Faust's Fetcher service runs
        """Hand each fetched input partition's records to the agent as one batch; rewind those not handed on.

        Every input record fetched either reaches the agent's channel or has
        its partition sought back to it (:meth:`rewind`): when flow stops
        during the fetch (a rebalance began), when its partition was paused
        meanwhile (recovery), or when flow stops while the channel is full.
        """
        inputs: BatchInputs | None = getattr(self.app, "batch_inputs", None)
        if inputs is None:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        read_offset = self._read_offset
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                # Taken before the fetch: input records fetched across a re-read are stamped with the
                # epoch before it, and the agent drops them if they do not fit (the re-read brings them).
                epochs = dict(self._reread_epochs)
                records, active = await self._wait_next_records(1.0)
                if not records or self.should_stop:
                    continue
                handed_on: set[TP] = set()
                if self.flow_active:
                    generation = self.app.consumer_generation_id
                    for tp, tp_records in self._batches_of(records, active, generation, inputs):
                        if tp.topic in inputs.topics:
                            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                            put = _queued(inputs, FetchedBatch(tp, tp_records, epochs.get(tp, 0)))
                            outcome = await self.wait_first(put, self.suspend_flow.wait())
                            if put not in outcome.done or not outcome.results[outcome.done.index(put)]:
                                break  # flow stopped first, or the queue was cleared: the batch was not queued
                            handed_on.add(tp)
                        else:
                            for record in tp_records:
                                await self.wait_first(callback(self._to_message(tp, record)), self.suspend_flow.wait())
                        read_offset[tp] = tp_records[-1].offset
                left = {tp: recs[0].offset for tp, recs in records.items() if recs and tp.topic in inputs.topics and tp not in handed_on}
                if left:
                    await self.rewind(left)
                if not self.flow_active:
                    await self.perform_seek()  # as Faust's getmany: records fetched across a rebalance are read again
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class IdempotentProducer(aiokafka_driver.Producer):
    """Faust's producer with idempotence on: a retried produce request is written once.

    Faust turns it on only with transactions; without it a batch retried after
    a lost answer (a broker failing over) is written twice, and the
    changelog, the window results and the dead letters would hold copies.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class BatchingTransport(aiokafka_driver.Transport):
    Consumer = BatchingConsumer
    Producer = IdempotentProducer


class DeclaredTableManager(TableManager):
    """Faust's table manager without the second it waits at start for tables declared late.

    Faust sleeps one second before it closes the list of tables, so that a
    table declared after the app started still gets its changelog. Every
    borderflow table is declared in ``create_app``, before the worker starts
    (a later one would still fail loudly: "Too late to add tables"), so the
    second is only a delay before the worker joins its group.
    """

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class BorderflowApp(faust.App):
    """A Faust app whose consumer delivers :attr:`batch_inputs` topics in whole batches."""

    batch_inputs: BatchInputs | None = None
    #: the exactness protocol the consumer commits through (set by create_app)
    checkpoint: Checkpoint | None = None

    def _new_transport(self) -> Any:
        # always this transport: Faust may create it before batch_inputs is set (app.topics needs it)
        return BatchingTransport(self.conf.broker_consumer, self)

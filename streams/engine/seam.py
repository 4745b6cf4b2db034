"""The Faust seam: every private part of Faust, mode and aiokafka that borderflow touches, in this one module.

None of these is public API: a release may rename, remove or change any of
them. borderflow pins the versions it is built and tested on (:data:`PINNED`,
the same as pyproject.toml). :data:`PRIVATE` is the table of what it touches:
for each member, why borderflow needs it and the test that shows the behaviour
it gives; :data:`INSTANCE_ATTRIBUTES` lists the attributes it reads or writes.
``tests/unit/test_seam.py`` checks that the installed versions are the pinned
ones, that every member listed still exists where it is expected, and that
no other module of borderflow touches a private name of Faust or aiokafka. An
upgrade then fails in that test, naming what moved, instead of silently no
longer calling an override (a renamed ``_commit_offsets`` would commit
offsets without the delivery check).

The rest of the engine uses what this module makes (the batch consumer, its
channel, the idempotent producer, the table manager, the app) through their
public methods. No override here is there for the embedded broker alone; its
workarounds are in ``streams/defects.py`` and run only on it. What Apache
Kafka under the suite let go: docs/architecture.md ("The Faust seam").
"""

from __future__ import annotations

import asyncio
import struct
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, cast

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer import fetcher as aiokafka_fetcher
from aiokafka.consumer import group_coordinator as aiokafka_group
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import ConsumerRecord
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import _current_event
from faust.tables import TableManager
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, TableT

from streams.engine.checkpoint import Checkpoint
from streams.engine.fastpath import BatchInputs, FetchedBatch, put_batch

#: the releases this seam is written against
PINNED: Final = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}

#: (module, class, attribute, why borderflow needs it, the test that covers the behaviour) for each private member it touches
PRIVATE: Final[tuple[tuple[str, str, str, str, str], ...]] = (
    # the batch consumer (BatchingConsumer, Faust's aiokafka Consumer)
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_new_consumer_thread",
        "bound the consumer thread's shutdown wait when Kafka is gone",
        "tests/e2e/test_durability.py (SIGTERM, broker gone)",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_commit_offsets",
        "flush and check every delivery before a commit (the checkpoint)",
        "tests/e2e/test_crash_recovery.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_new_offset",
        "commit the checkpoint's processed mark instead of Faust's acks",
        "tests/e2e/test_crash_recovery.py",
    ),
    (
        "faust.stores.rocksdb",
        "Store",
        "_db_for_partition",
        "read a standby replica's partition, which Faust's iteration hides (it shows active partitions only)",
        "tests/e2e/test_rolling_restart.py",
    ),
    (
        "faust.stores.rocksdb",
        "Store",
        "_visible_items",
        "the rows of that partition without Faust's own offset key",
        "tests/e2e/test_rolling_restart.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_drain_messages",
        "hand whole fetched batches to the agent (the hot path)",
        "tests/integration/test_pipeline.py, tests/e2e/test_soak.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_wait_next_records",
        "the fetch the batch loop waits on",
        "tests/e2e/test_durability.py (flow stops during a fetch)",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_to_message",
        "one Faust Message per batch, for the table's event context",
        "tests/integration/test_bare_records.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "AIOKafkaConsumerThread",
        "_ensure_consumer",
        "seek aiokafka's consumer in its own thread (rewind, re-read)",
        "tests/unit/test_gap_guard.py, tests/e2e/test_durability.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "AIOKafkaConsumerThread",
        "_create_worker_consumer",
        "the fetch long-poll of BORDERFLOW_FETCH_MAX_WAIT_MS instead of Faust's fixed 1.5 s",
        "tests/integration/test_fetch_wait.py, tests/e2e/test_freshness.py",
    ),
    # the idempotent producer, and the producer the direct output writes through
    (
        "faust.transport.drivers.aiokafka",
        "Producer",
        "_settings_extra",
        "acks=all and idempotence without transactions",
        "tests/e2e/test_broker_faults.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Producer",
        "_ensure_producer",
        "write record batches on Faust's own producer (underlying_producer)",
        "tests/integration/test_output.py",
    ),
    (
        "aiokafka.producer.message_accumulator",
        "BatchBuilder",
        "_build",
        "build and compress a record batch in the direct output's thread (BuiltBatch), and give aiokafka one built already",
        "tests/unit/test_built_batches.py, tests/integration/test_output.py",
    ),
    (
        "aiokafka.producer.message_accumulator",
        "BatchBuilder",
        "_set_producer_state",
        "write the idempotent producer's id, epoch and sequence into a batch built beforehand (BuiltBatch)",
        "tests/unit/test_built_batches.py, tests/integration/test_output.py",
    ),
    # the table manager without its start-up second
    (
        "faust.tables.manager",
        "TableManager",
        "_update_channels",
        "start the tables without Faust's one-second wait",
        "tests/e2e/test_durability.py (clean restart)",
    ),
    # the batch channel's queue
    ("faust.channels", "Channel", "_queue", "a queue that keeps its batches when flow resumes", "tests/unit/test_batch_channel.py"),
    # the transport that makes the batch consumer and the idempotent producer
    ("faust.app.base", "App", "_new_transport", "use the batch consumer and the idempotent producer", "every integration test"),
    # aiokafka's records of one fetched partition, replaced for the input topics (read_bare)
    (
        "aiokafka.consumer.fetcher",
        "PartitionRecords",
        "_consumer_record",
        "bare records instead of a ConsumerRecord each",
        "tests/integration/test_bare_records.py",
    ),
    (
        "aiokafka.consumer.fetcher",
        "PartitionRecords",
        "_records_iterator",
        "iterate the records without aiokafka's per-record wrapper",
        "tests/integration/test_bare_records.py",
    ),
    # aiokafka's client inside a plain consumer (replay and bench read topics made moments before)
    (
        "aiokafka.consumer.consumer",
        "AIOKafkaConsumer",
        "_client",
        "refresh the metadata of a topic just made",
        "tests/e2e/test_replay.py, tests/e2e/test_bench.py",
    ),
    # aiokafka's heartbeat, whose answers tell a worker it is still a member of its group
    (
        "aiokafka.consumer.group_coordinator",
        "GroupCoordinator",
        "_do_heartbeat",
        "know when the group coordinator last answered, so a cut-off worker stops serving its partitions",
        "tests/e2e/test_network_faults.py",
    ),
    # Faust's current event, which picks a table write's changelog partition
    (
        "faust.streams",
        "Stream",
        "_current_event",
        "write a batch's state in the context of one of its own events",
        "tests/integration/test_pipeline.py",
    ),
)
#: instance attributes that borderflow reads or writes: (module, class, attribute) found in the class's own source
INSTANCE_ATTRIBUTES: Final[tuple[tuple[str, str, str], ...]] = (
    ("faust.transport.consumer", "Consumer", "_acked"),
    ("faust.transport.consumer", "Consumer", "_read_offset"),
    ("faust.transport.consumer", "Consumer", "_buffered_partitions"),
    ("faust.transport.consumer", "ThreadDelegateConsumer", "_thread"),
    ("mode.services", "Service", "_stopped"),
    ("aiokafka.consumer.consumer", "AIOKafkaConsumer", "_fetch_max_wait_ms"),
)


class BareRecords(aiokafka_fetcher.PartitionRecords):
    """aiokafka's records of one fetched partition, yielded as the record objects its batch reader makes.

    aiokafka wraps every record in a ``ConsumerRecord`` (a dataclass of eleven
    fields, built in Python, in the consumer thread that shares the GIL with
    the event loop), a large share of what the bare consumer spends on a
    record (docs/benchmarks.md). Input batches only need offset, key, value and
    headers, which the reader's records already have; Faust's message for the
    table context is built from the last record alone (:func:`consumer_record`).
    Everything else (CRC checks, aborted transactions, control batches, the
    fetch position) is aiokafka's own code. tests/integration/test_bare_records.py
    checks that the records carry what a ConsumerRecord would.
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
            return BareRecords(tp, records, aborted, fetch_offset, key_de, value_de, *rest)
        return self.standard(tp, records, aborted, fetch_offset, key_de, value_de, *rest)


def read_bare(topics: Iterable[str]) -> None:
    """Have aiokafka's fetchers in this process yield bare records for ``topics`` (:class:`BareRecords`).

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


class ShortPollConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka consumer has its fetches held at most the app's ``fetch_max_wait_ms``.

    Faust builds the worker's consumer with ``fetch_max_wait_ms=1500`` and no
    setting. aiokafka keeps one fetch per broker in flight and leaves out of
    it the partitions whose fetched records are still waiting to be read, so
    a fetch often asks only for partitions with nothing new; the broker holds
    it for the whole wait while the busy partitions' next records wait behind
    it (docs/benchmarks.md).
    """

    def _create_worker_consumer(self, transport: Any) -> AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = cast(BorderflowApp, self.app).consumer_parts.fetch_max_wait_ms
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read by start(), which makes the fetcher
        return consumer


class BatchingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, delivering input topics in whole batches and committing what was processed."""

    #: how long a stopping worker waits for the consumer thread; the rest of the wait is aiokafka retrying an absent broker
    THREAD_SHUTDOWN_SECONDS = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reread_epochs: dict[TP, int] = {}

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        thread = ShortPollConsumerThread(self, loop=self.loop, beacon=self.beacon)  # as Faust's, but its own class
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

    @property
    def parts(self) -> ConsumerParts:
        """The checkpoint and batch inputs the app was assembled with."""
        return cast(BorderflowApp, self.app).consumer_parts

    def mark_processed(self, tp: TP, offset: int) -> None:
        """Everything up to ``offset`` in ``tp`` is applied and its state queued to the changelog (the checkpoint's mark)."""
        checkpoint = self.parts.checkpoint
        assert checkpoint is not None, "batches are processed only by an app assembled with its checkpoint"
        checkpoint.processed(tp, offset)
        self._acked[tp]  # noqa: B018 - the commit loop visits the partitions found here

    async def _commit_offsets(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        checkpoint = self.parts.checkpoint
        if checkpoint is not None:  # what the offsets cover must have reached Kafka, the direct output included
            await checkpoint.before_commit(self._flush_output)
        return await super()._commit_offsets(offsets, start_new_transaction)

    async def _flush_output(self) -> None:
        """The records the direct output still makes off the event loop into the producer, then the producer flushed."""
        checkpoint = self.parts.checkpoint
        assert checkpoint is not None, "the direct output belongs to an app assembled with its checkpoint"
        await checkpoint.output.queued()
        await self.app.producer.flush()

    def _new_offset(self, tp: TP) -> int | None:
        checkpoint = self.parts.checkpoint
        offset = None if checkpoint is None else checkpoint.commit_offset(tp)
        return offset if offset is not None else super()._new_offset(tp)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        checkpoint = self.parts.checkpoint
        if self.parts.inputs is None or checkpoint is None:
            await super().on_partitions_revoked(revoked)
            return
        # No batch may run from here until flow stops (inside Faust's revocation): one that did
        # would write state the partitions' next owner may never read, and mark it processed.
        async with checkpoint.lock:
            await self._flush_output()
            checkpoint.forget(revoked)
            await super().on_partitions_revoked(revoked)

    async def rewind(self, first_offsets: Mapping[TP, int]) -> None:
        """Fetch these partitions again from these offsets: records fetched and not handed on must come back.

        aiokafka's position is already past them, and nothing else is sure to
        send it back: Faust seeks to the committed offset, which a new group
        (or a broker that lost its offsets) does not have, and the agent's
        :class:`GapGuard` only acts when a later batch arrives, which may
        never happen. Seeking an input partition is always safe: records
        before the state's next offset are skipped by offset, and a gap is
        read again; so is seeking a changelog partition, whose records Faust
        applies only past the offset it has seen. Partitions no longer assigned are left alone (their next
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

    def _left_behind(
        self, records: Mapping[TP, list[Any]], handed_on: set[TP], stopped_at: Mapping[TP, int], inputs: BatchInputs
    ) -> dict[TP, int]:
        """Where each partition fetched and not wholly handed on must be read again from.

        A changelog partition's records left behind are read again as an
        input's are: aiokafka's position is past them, and a standby replica
        that never got them would hold a gap while its offset says it is
        complete (nothing else seeks a standby back until the next rebalance).
        Changelog records read before (Faust's read-offset rule) are not
        left behind.
        """
        left = {}
        for tp, tp_records in records.items():
            if not tp_records or tp in handed_on:
                continue
            if tp in stopped_at:
                left[tp] = stopped_at[tp]
                continue
            if tp.topic in inputs.topics:
                left[tp] = tp_records[0].offset
                continue
            last_read = self._read_offset[tp]
            unread = [r.offset for r in tp_records if last_read is None or r.offset >= last_read]
            if unread:
                left[tp] = unread[0]
        return left

    async def _drain_messages(self, fetcher: Any) -> None:  # the loop Faust's Fetcher service runs
        """Hand each fetched input partition's records to the agent as one batch; rewind those not handed on.

        Every input record fetched either reaches the agent's channel or has
        its partition sought back to it (:meth:`rewind`): when flow stops
        during the fetch (a rebalance began), when its partition was paused
        meanwhile (recovery), or when flow stops while the channel is full.
        """
        inputs = self.parts.inputs
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
                stopped_at: dict[TP, int] = {}
                if self.flow_active:
                    generation = self.app.consumer_generation_id
                    for tp, tp_records in self._batches_of(records, active, generation, inputs):
                        if tp.topic in inputs.topics:
                            self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                            put = put_batch(inputs, FetchedBatch(tp, tp_records, epochs.get(tp, 0)))
                            outcome = await self.wait_first(put, self.suspend_flow.wait())
                            if put not in outcome.done or not outcome.results[outcome.done.index(put)]:
                                break  # flow stopped first, or the queue was cleared: the batch was not queued
                        else:
                            for record in tp_records:
                                delivery = callback(self._to_message(tp, record))
                                outcome = await self.wait_first(delivery, self.suspend_flow.wait())
                                if delivery not in outcome.done:
                                    stopped_at[tp] = record.offset
                                    break
                            if tp in stopped_at:
                                break  # flow stopped first: this record and the rest were not handed to the tables
                        handed_on.add(tp)
                        read_offset[tp] = tp_records[-1].offset
                left = self._left_behind(records, handed_on, stopped_at, inputs)
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


@dataclass(slots=True)
class ConsumerParts:
    """What the app's batch consumer works with, given to :class:`BorderflowApp` by the app's assembly.

    The checkpoint and the batch inputs are made after the app (they need
    it), so the assembly sets them once it has them, before the worker starts.
    """

    #: how long the broker may hold the worker's fetch (None keeps Faust's 1.5 s)
    fetch_max_wait_ms: int | None = None
    #: the exactness protocol the consumer commits through; its lock is held while a batch is applied
    checkpoint: Checkpoint | None = None
    #: the topics delivered in whole batches, and where to (None: Faust's per-message path)
    inputs: BatchInputs | None = None


class BorderflowApp(faust.App):
    """A Faust app whose consumer delivers the :class:`ConsumerParts`' input topics in whole batches."""

    def __init__(self, app_id: str, *, consumer_parts: ConsumerParts, **options: Any) -> None:
        self.consumer_parts = consumer_parts
        super().__init__(app_id, **options)

    def _new_transport(self) -> Any:
        # always this transport: Faust may create it before the batch inputs are set (app.topics needs it)
        return BatchingTransport(self.conf.broker_consumer, self)


def table_context(consumer: BatchingConsumer, tp: TP, record: Any) -> faust.types.Message:
    """Faust's Message for a bare record: the context a table write of its batch is made in."""
    return consumer._to_message(tp, consumer_record(tp, record))


def table_event(app: faust.App, message: faust.types.Message) -> faust.types.EventT:
    """Faust's event for ``message``, which :func:`as_current_event` makes current."""
    return faust.Event(app, message.key, message.value, message.headers, message)


@contextmanager
def as_current_event(event: faust.types.EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event while writing a batch's state.

    Faust tables pick the changelog partition (and RocksDB the local
    database) from the current event, which only exists inside per-event
    iteration. A batch holds events from several partitions, so each
    partition's writes are made in the context of one of its own events.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


# The v2 record batch header (Kafka's DefaultRecordBatch): base offset q, length i, leader epoch i, magic b,
# CRC I, attributes h, last offset delta i, first and max timestamp q q, producer id q, producer epoch h,
# base sequence i, record count i. The CRC-32C covers everything from the attributes on.
_CRC: Final = struct.Struct(">I")
_CRC_AT: Final = struct.calcsize(">qiib")
_CRC_FROM: Final = struct.calcsize(">qiibI")
_PRODUCER_STATE: Final = struct.Struct(">qhi")
_PRODUCER_STATE_AT: Final = struct.calcsize(">qiibIhiqq")


class BuiltBatch:
    """A record batch built and compressed before the producer's sender takes it; to aiokafka, a closed batch builder.

    aiokafka builds and compresses a batch when its sender takes it, on the
    event loop, because only then does an idempotent producer know the
    batch's producer id, epoch and sequence number. This one is built
    beforehand with aiokafka's builder and placeholders for those; when the
    sender sets them they are written into the header and its CRC computed
    again, over the compressed bytes: the bytes aiokafka would have sent.
    """

    def __init__(self, builder: Any) -> None:
        """``builder``: a filled batch builder of the producer's (``create_batch``), built here."""
        self._records = builder.record_count()
        self._data: bytearray = builder._build()

    def append(self, **_: Any) -> None:
        return None  # closed: the producer starts another batch

    def close(self) -> None:
        pass

    def closed(self) -> bool:
        return True

    def record_count(self) -> int:
        return self._records

    def size(self) -> int:
        return len(self._data)

    def _set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        _PRODUCER_STATE.pack_into(self._data, _PRODUCER_STATE_AT, producer_id, producer_epoch, base_sequence)
        _CRC.pack_into(self._data, _CRC_AT, calc_crc32c(memoryview(self._data)[_CRC_FROM:]))

    def _build(self) -> bytearray:
        return self._data


def underlying_producer(app: faust.App) -> Any:
    """aiokafka's producer inside Faust's, started if it is not yet: what the direct output writes record batches through."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


#: who hears of each heartbeat the coordinator answered (watch_heartbeats)
_heartbeat_listeners: list[Callable[[float], None]] = []


def watch_heartbeats(answered: Callable[[float], None]) -> None:
    """Call ``answered(sent_at)`` (``time.monotonic()``) for each heartbeat of this process's consumers that the group answered.

    ``sent_at`` is when the heartbeat was sent: the coordinator cannot have
    heard from the member any earlier, so its session runs at least until
    ``sent_at`` plus the session timeout. Called in the consumer's thread.
    A heartbeat answered "rebalance in progress" counts: the member is kept
    in the group for the rebalance.
    """
    _heartbeat_listeners.append(answered)
    coordinator = aiokafka_group.GroupCoordinator
    if getattr(coordinator._do_heartbeat, "borderflow_watched", False):
        return
    original = coordinator._do_heartbeat

    async def do_heartbeat(self: Any) -> bool:
        sent_at = time.monotonic()
        ok = bool(await original(self))
        if ok:
            for listener in _heartbeat_listeners:
                listener(sent_at)
        return ok

    do_heartbeat.borderflow_watched = True  # type: ignore[attr-defined]
    coordinator._do_heartbeat = do_heartbeat


def partition_rows(table: TableT[bytes, bytes], partition: int) -> Iterator[tuple[bytes, bytes]]:
    """The rows the table's local store holds for ``partition``, a standby replica's included.

    Faust's own iteration shows the active partitions only; the in-memory
    store keeps every partition in one mapping, so its rows of other
    partitions come too (callers select theirs by key).
    """
    store = table.data
    if isinstance(store, RocksDBStore):
        yield from store._visible_items(store._db_for_partition(partition))
    else:
        yield from cast(Mapping[bytes, bytes], store).items()


async def changelog_marks(
    consumer: faust.types.ConsumerT, changelog: Iterable[TP], inputs: Iterable[TP]
) -> tuple[dict[TP, int], dict[TP, int | None]]:
    """The changelog partitions' end offsets as the broker has them now, and the group's committed offsets of the inputs.

    Asked from Faust's consumer thread, which owns the aiokafka consumer. The
    highwater Faust's consumer reports is the one of its last fetch of the
    partition, which may be older than the records since written.
    """
    changelog, inputs = list(changelog), list(inputs)

    async def asked() -> tuple[dict[TP, int], dict[TP, int | None]]:
        aiokafka_consumer = consumer._thread._ensure_consumer()  # type: ignore[attr-defined]  # noqa: SLF001
        ends = await aiokafka_consumer.end_offsets(changelog) if changelog else {}
        committed = await asyncio.gather(*(aiokafka_consumer.committed(tp) for tp in inputs))
        return {TP(tp.topic, tp.partition): end for tp, end in ends.items()}, dict(zip(inputs, committed, strict=True))

    return cast(tuple[dict[TP, int], dict[TP, int | None]], await consumer._thread.call_thread(asked))  # type: ignore[attr-defined]


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Have a plain aiokafka consumer fetch the cluster's metadata now (a topic just made; aiokafka has no public refresh)."""
    await consumer._client.force_metadata_update()


__all__ = [
    "INSTANCE_ATTRIBUTES",
    "PINNED",
    "PRIVATE",
    "BareRecords",
    "BatchChannel",
    "BatchingConsumer",
    "BatchingTransport",
    "BorderflowApp",
    "BuiltBatch",
    "ConsumerParts",
    "DeclaredTableManager",
    "IdempotentProducer",
    "ShortPollConsumerThread",
    "as_current_event",
    "changelog_marks",
    "consumer_record",
    "partition_rows",
    "read_bare",
    "refresh_metadata",
    "table_context",
    "table_event",
    "underlying_producer",
    "watch_heartbeats",
]

"""State changelog, window results and dead letters, written straight into the Kafka producer's record batches.

Faust's ``send_soon`` (what a table write does for its changelog) costs a
FutureMessage, a queue hop and an awaited send per record, and Faust's
producer flush before a commit waits until that queue is empty, which under
a steady backlog it never is. A batch changes hundreds of state records, and
a busy hour closes a window for every series. Here each batch's records for
one output topic go into aiokafka record batches on the same producer that
Faust flushes before every commit, so an input offset is still committed
only after what its events produced is in Kafka. A record batch that fails to be delivered stops the
worker before the next commit (:meth:`DirectOutput.check`), so its input is
processed again rather than lost.

Records go to the output partition with the input partition's number (modulo
the output's partition count): each key is only ever written by the owner of
one input partition, so one key stays in one partition, in order. What
each record holds is :mod:`streams.engine.codec`'s.

Records that nothing waits for (forwarded copies) can instead be made, put
into record batches and compressed in a thread (:meth:`DirectOutput.send_soon`),
while the event loop goes on with the next input batch; before a commit
:meth:`DirectOutput.queued` waits until they are in the producer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from streams.engine.codec import Record

log = logging.getLogger(__name__)

#: records and their timestamps (ms, or None for the time of sending), made in the output's thread
RecordsMaker = Callable[[], tuple[Sequence[Record], Sequence[int | None]]]

#: batches given to send_soon and not yet in the producer, at most; the next send_soon waits for the oldest
MAX_QUEUED_OFF_LOOP: Final = 8




class OutputFailed(RuntimeError):
    """A record batch could not be delivered; the inputs that produced it must not be committed."""


def fill_batches(create_batch: Callable[[], Any], records: Sequence[Record], timestamps: Sequence[int | None], topic: str) -> list[Any]:
    """``records`` in order in as few of the producer's batch builders as they fit in."""
    batch = create_batch()
    batches = [batch]
    for (key, value, headers), timestamp in zip(records, timestamps, strict=True):
        if batch.append(key=key, value=value, timestamp=timestamp, headers=headers) is None:
            batch = create_batch()
            batches.append(batch)
            if batch.append(key=key, value=value, timestamp=timestamp, headers=headers) is None:
                raise OutputFailed(f"a record for {topic} is larger than the producer's batch size")
    return batches


def build_batches(create_batch: Callable[[], Any], build: Callable[[Any], Any], make: RecordsMaker, topic: str) -> list[Any]:
    """Make the records, fill batch builders with them and ``build`` (compress) each: what runs in the output's thread."""
    records, timestamps = make()
    if not records:
        return []
    return [build(batch) for batch in fill_batches(create_batch, records, timestamps, topic)]


class DirectOutput:
    def __init__(self, producer: Any, build: Callable[[Any], Any] | None = None) -> None:
        """``producer``: a callable giving the started ``AIOKafkaProducer`` (Faust creates it late).

        ``build``: turns a filled batch builder of the producer's into a built
        batch it sends as it is (:class:`streams.engine.seam.BuiltBatch`), for
        :meth:`send_soon`.
        """
        self._producer = producer
        self._build = build
        self._partitions: dict[str, list[int]] = {}
        self.failure: BaseException | None = None
        self._thread: ThreadPoolExecutor | None = None
        #: batches of send_soon on their way to the producer, oldest first
        self._off_loop: list[asyncio.Task[None]] = []

    async def _target(self, producer: Any, topic: str, partition: int, exact: bool) -> int:
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        if exact and partition not in partitions:
            raise OutputFailed(f"{topic} has no partition {partition}")
        return partition if exact else partitions[partition % len(partitions)]

    async def send(
        self,
        topic: str,
        partition: int,
        records: Sequence[Record],
        *,
        exact: bool = False,
        on_delivered: Callable[[int], None] | None = None,
        timestamps: Sequence[int | None] | None = None,
    ) -> None:
        """Queue ``records`` for ``topic``, in order, in partition ``partition`` (modulo its count unless ``exact``).

        ``on_delivered`` gets the offset of the last record once all are in
        Kafka. ``timestamps`` (ms, one per record) keep records' own
        timestamps; without them the producer stamps the time of sending.
        """
        if not records:
            return
        self.check()
        producer = self._producer()
        target = await self._target(producer, topic, partition, exact)
        stamps = timestamps if timestamps is not None else [None] * len(records)
        *full, last = fill_batches(producer.create_batch, records, stamps, topic)
        for batch in full:
            self._watch(await producer.send_batch(batch, topic, partition=target), None, 0)
        self._watch(await producer.send_batch(last, topic, partition=target), on_delivered, last.record_count())

    async def send_soon(self, topic: str, partition: int, make: RecordsMaker) -> None:
        """Queue the records ``make`` gives for ``topic``'s partition ``partition``, made and compressed in a thread.

        Returns once the work is handed to the thread (or, with
        :data:`MAX_QUEUED_OFF_LOOP` batches waiting already, once the oldest is
        in the producer). Its batches reach the producer in the order of the
        calls, each after those of every earlier call; :meth:`queued` waits
        until they all have. ``make`` runs in the thread: it must only read
        what nothing changes any more.
        """
        if self._build is None:
            raise TypeError("send_soon needs the output made with a build function")
        self.check()
        producer = self._producer()
        target = await self._target(producer, topic, partition, exact=True)
        while len(self._off_loop) >= MAX_QUEUED_OFF_LOOP:
            await asyncio.wait([self._off_loop[0]])
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderflow-output")
        building = asyncio.get_running_loop().run_in_executor(self._thread, build_batches, producer.create_batch, self._build, make, topic)
        before = self._off_loop[-1] if self._off_loop else None
        handover = asyncio.ensure_future(self._hand_over(producer, topic, target, building, before))
        self._off_loop.append(handover)
        handover.add_done_callback(self._handed_over)

    async def _hand_over(
        self, producer: Any, topic: str, target: int, building: asyncio.Future[list[Any]], before: asyncio.Task[None] | None
    ) -> None:
        batches = await building
        if before is not None:
            await asyncio.wait([before])
        for batch in batches:
            self._watch(await producer.send_batch(batch, topic, partition=target), None, 0)

    def _handed_over(self, handover: asyncio.Task[None]) -> None:
        self._off_loop.remove(handover)
        if handover.cancelled():
            self.failure = self.failure or OutputFailed("records built off the event loop were cancelled before they were queued")
        elif handover.exception() is not None:
            self.failure = self.failure or handover.exception()
            log.error("records built off the event loop could not be queued: %r", handover.exception())

    async def queued(self) -> None:
        """Wait until the batches of every :meth:`send_soon` so far are in the producer, or failed (:meth:`check` raises then)."""
        while self._off_loop:
            await asyncio.wait(list(self._off_loop))

    def _watch(self, delivery: asyncio.Future[Any], on_delivered: Callable[[int], None] | None, records: int) -> None:
        def delivered(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                self.failure = self.failure or OutputFailed("a record batch was cancelled before delivery")
            elif future.exception() is not None:
                self.failure = self.failure or future.exception()
                log.error("a record batch was not delivered: %r", future.exception())
            elif on_delivered is not None:
                on_delivered(future.result().offset + records - 1)

        delivery.add_done_callback(delivered)

    def check(self) -> None:
        """Raise if any record batch failed: nothing after it may be committed."""
        if self.failure is not None:
            raise OutputFailed(f"output not delivered: {self.failure!r}") from self.failure

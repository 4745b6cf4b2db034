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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from streams.engine.codec import Record

log = logging.getLogger(__name__)


class OutputFailed(RuntimeError):
    """A record batch could not be delivered; the inputs that produced it must not be committed."""


class DirectOutput:
    def __init__(self, producer: Any) -> None:
        """``producer``: a callable giving the started ``AIOKafkaProducer`` (Faust creates it late)."""
        self._producer = producer
        self._partitions: dict[str, list[int]] = {}
        self.failure: BaseException | None = None

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
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        if exact and partition not in partitions:
            raise OutputFailed(f"{topic} has no partition {partition}")
        target = partition if exact else partitions[partition % len(partitions)]
        batch = producer.create_batch()
        stamps = timestamps if timestamps is not None else [None] * len(records)
        for (key, value, headers), timestamp in zip(records, stamps, strict=True):
            if batch.append(key=key, value=value, timestamp=timestamp, headers=headers) is None:
                self._watch(await producer.send_batch(batch, topic, partition=target), None, 0)
                batch = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=timestamp, headers=headers) is None:
                    raise OutputFailed(f"a record for {topic} is larger than the producer's batch size")
        self._watch(await producer.send_batch(batch, topic, partition=target), on_delivered, batch.record_count())

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

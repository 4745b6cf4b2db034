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

This module holds what the batch path is made of; the consumer, channel and
producer classes that reach into Faust and aiokafka for it are in
:mod:`streams.engine.seam`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from faust.types import TP

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FetchedBatch:
    """One partition's records from one fetch, in offset order (aiokafka's bare records: :class:`~streams.engine.seam.BareRecords`)."""

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
    a rewind (:meth:`~streams.engine.seam.BatchingConsumer.rewind`) lands after a rebalance has
    sent the partition back further, and when the state recovered is behind
    the committed offset. Then the partition is read again from the state's
    next offset (which the caller raises to the log's first offset: records deleted by
    retention are gone for good). Batches fetched before that seek are
    dropped; a hole inside the log, which borderflow's producers never make,
    would be read again and again, and is logged each time rather than
    skipped.

    Records at or below the state's offset are not counted again, but they
    are not free to skip either: the copies they forwarded may not have
    reached Kafka before a crash (those of the last batches are still on
    their way when the changelog already holds the progress that covers
    them), and they are forwarded again only when the records pass through
    the core again. So a batch the agent gives back (:meth:`given_back`) is
    owed: no later batch of its partition is applied before one that starts
    at or before it, whichever seek landed last.
    """

    def __init__(self) -> None:
        self.rereads: dict[TP, int] = {}
        self._log_starts: dict[TP, int] = {}
        #: the first offset of the earliest batch given back and not yet fetched again
        self._owed: dict[TP, int] = {}

    def log_starts_at(self, tp: TP, offset: int) -> None:
        """Records below ``offset`` are no longer in ``tp``'s log (retention): no batch can bring them."""
        self._log_starts[tp] = max(offset, self._log_starts.get(tp, 0))

    def given_back(self, tp: TP, first_offset: int) -> None:
        """The agent did not apply a batch of ``tp`` from ``first_offset`` on: it must be fetched again."""
        owed = self._owed.get(tp)
        self._owed[tp] = first_offset if owed is None else min(owed, first_offset)

    def next_needed(self, tp: TP, next_offset: int) -> int:
        """Where ``tp`` must be read from: the state's ``next_offset``, or a batch given back before it."""
        owed = self._owed.get(tp)
        return next_offset if owed is None else min(owed, next_offset)

    def admit(self, tp: TP, next_offset: int, first_offset: int, batch_epoch: int, current_epoch: int) -> Admission:
        if first_offset <= max(self.next_needed(tp, next_offset), self._log_starts.get(tp, 0)):
            self.rereads.pop(tp, None)
            self._owed.pop(tp, None)
            return Admission.APPLY
        if batch_epoch != current_epoch:
            return Admission.DROP
        self.rereads[tp] = self.rereads.get(tp, 0) + 1
        return Admission.REREAD

    def forget(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.rereads.pop(tp, None)
            self._log_starts.pop(tp, None)
            self._owed.pop(tp, None)

    async def read_again(self, consumer: Rereader, tp: TP, next_offset: int) -> None:
        """Have ``consumer`` read ``tp`` again from ``next_offset``, or from its log's start once a re-read came back short."""
        rereads = self.rereads.get(tp, 0)
        target = next_offset
        if rereads > 1:  # the same hole after a re-read: has retention deleted those records?
            try:
                log_start = await asyncio.wait_for(consumer.log_start(tp), timeout=10)
            except Exception as exc:  # noqa: BLE001 - the broker is away: read again from the state, and ask next time
                log.info("%s: could not ask where the log starts: %r", tp, exc)
            else:
                self.log_starts_at(tp, log_start)
                target = max(next_offset, log_start)
        (log.warning if rereads > 3 else log.info)(
            "%s: records from %d were not applied: reading again from %d (%d time(s))", tp, next_offset, target, rereads
        )
        try:
            await consumer.reread(tp, target)
        except Exception as exc:  # noqa: BLE001 - the consumer is stopping: its partitions start from the committed offsets next time
            log.info("%s: could not read again from %d: %r", tp, target, exc)


class Rereader(Protocol):
    """What :meth:`GapGuard.read_again` needs of the consumer (:class:`~streams.engine.seam.BatchingConsumer`)."""

    async def log_start(self, tp: TP) -> int: ...

    async def reread(self, tp: TP, offset: int) -> None: ...


class BatchInputs:
    """Which topics bypass the per-message path, and what receives their batches."""

    def __init__(self, topics: Iterable[str], deliver: Callable[[FetchedBatch], Awaitable[None]]) -> None:
        self.topics = frozenset(topics)
        self.deliver = deliver


async def put_batch(inputs: BatchInputs, batch: FetchedBatch) -> bool:
    """Put the batch on the agent's channel: False if the queue cancelled the put (a cleared queue cancels its putters)."""
    try:
        await inputs.deliver(batch)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # this put itself was cancelled: pass it on
            raise
        return False
    return True

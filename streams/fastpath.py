"""Input messages in whole batches, past Faust's per-event stream machinery.

Faust's consumer, group membership, offset commits, tables, changelogs and
recovery are all kept. What is replaced is the path between the conductor and
an agent: instead of one Event, one queue hop, processors and an ack
coroutine per message, the conductor hands each message to a
:class:`BatchTopic`, which appends it to a list; a task takes the whole list,
runs it through the pure core (:meth:`Runtime.process_messages`) and then
acknowledges each message to the consumer, which commits the offsets after
flushing the producer, as before. Acks still come only after the batch's
state writes, so the exactness argument is unchanged.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import faust
from faust.types import TP


class BatchBuffer:
    """What the conductor sees as the topic's queue: a list, with backpressure."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: list[Any] = []
        self.not_empty = asyncio.Event()
        self.not_full = asyncio.Event()
        self.not_full.set()
        self._pressure_drops: dict[TP, Callable[[], None]] = {}

    def full(self) -> bool:
        return len(self.items) >= self.maxsize

    def put_nowait_enhanced(self, value: Any, *, on_pressure_high: Callable[[], None], on_pressure_drop: Callable[[], None]) -> None:
        self.items.append(value)
        self.not_empty.set()
        if len(self.items) >= self.maxsize:
            self.not_full.clear()
            on_pressure_high()  # the consumer stops fetching this partition for now
            self._pressure_drops[value.tp] = on_pressure_drop

    async def put(self, item: Any) -> None:
        while self.full():
            self.not_full.clear()
            await self.not_full.wait()
        self.items.append(item)
        self.not_empty.set()

    def take(self) -> list[Any]:
        items, self.items = self.items, []
        self.not_empty.clear()
        self.not_full.set()
        drops, self._pressure_drops = self._pressure_drops, {}
        for drop in drops.values():
            drop()
        return items

    def discard(self, partitions: set[TP]) -> None:
        """Forget buffered messages of revoked partitions: not processed, not acked, so their new owner gets them."""
        self.items = [m for m in self.items if m.tp not in partitions]
        if len(self.items) < self.maxsize:
            self.not_full.set()

    def clear(self) -> None:  # flow control clears every stream buffer on rebalance
        self.items = []
        self.not_empty.clear()
        self.not_full.set()


class BatchTopic(faust.Topic):
    """A source topic whose messages go to a :class:`BatchBuffer` undecoded."""

    buffer: BatchBuffer

    def _compile_decode(self) -> None:
        # Faust compiles a decoder into ``self.decode``; this one keeps the raw message
        self.decode = self._pass_through  # type: ignore[method-assign]  # as faust.Topic itself does

    @staticmethod
    async def _pass_through(message: Any, *, propagate: bool = False) -> Any:
        return message

    @property
    def queue(self) -> Any:
        return self.buffer

    async def put(self, event: Any) -> None:
        await self.buffer.put(event)


def batch_topic(app: faust.App, name: str, partitions: int, maxsize: int) -> BatchTopic:
    topic = BatchTopic(app, topics=[name], key_type=bytes, value_type=bytes, partitions=partitions, acks=True)
    topic.buffer = BatchBuffer(maxsize)
    app.topics.add(topic)  # subscribe: the assignor co-partitions the tables with it
    return topic


def by_topic(messages: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for message in messages:
        out[message.topic].append(message)
    return out

"""The batch buffer between Faust's conductor and the core: backpressure, and revoked partitions dropped unacked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from faust.types import TP

from streams.fastpath import BatchBuffer


@dataclass
class FakeMessage:  # only what the buffer reads: the message's partition
    tp: TP
    offset: int


def test_full_buffer_pauses_the_partition_until_taken_and_resumes_it_after() -> None:
    buffer = BatchBuffer(maxsize=3)
    events: list[str] = []
    tp = TP("crossings", 0)
    for offset in range(3):
        buffer.put_nowait_enhanced(
            value=FakeMessage(tp, offset), on_pressure_high=lambda: events.append("pause"), on_pressure_drop=lambda: events.append("resume")
        )
    assert buffer.full() and events == ["pause"]
    taken = buffer.take()
    assert [m.offset for m in taken] == [0, 1, 2] and events == ["pause", "resume"] and not buffer.full()


def test_revoked_partitions_are_dropped_and_others_kept_in_order() -> None:
    buffer = BatchBuffer(maxsize=100)
    for offset in range(6):
        buffer.put_nowait_enhanced(value=FakeMessage(TP("crossings", offset % 2), offset), on_pressure_high=list, on_pressure_drop=list)
    buffer.discard({TP("crossings", 1)})
    assert [(m.tp.partition, m.offset) for m in buffer.take()] == [(0, 0), (0, 2), (0, 4)]


def test_put_waits_for_room() -> None:
    async def scenario() -> list[int]:
        buffer = BatchBuffer(maxsize=1)
        await buffer.put(FakeMessage(TP("t", 0), 0))
        waiting = asyncio.ensure_future(buffer.put(FakeMessage(TP("t", 0), 1)))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        first = [m.offset for m in buffer.take()]
        await asyncio.wait_for(waiting, 1)
        return first + [m.offset for m in buffer.take()]

    assert asyncio.run(scenario()) == [0, 1]

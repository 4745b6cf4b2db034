"""The agent's channel keeps queued batches when Faust resumes flow; Faust's own channel drops them."""

from __future__ import annotations

import asyncio

import faust
from faust.types import TP

from streams.engine.fastpath import BatchInputs, FetchedBatch, put_batch
from streams.engine.seam import BatchChannel


async def _queued_after_resume(channel_type: type[faust.Channel]) -> list[object]:
    app = faust.App("batch-channel-test", broker="kafka://127.0.0.1:1")
    channel = channel_type(app, maxsize=4)
    reader = channel.clone(is_iterator=True)  # what an agent's stream reads from
    app.flow_control.resume()
    await channel.put("batch-1")
    await channel.put("batch-2")
    app.flow_control.suspend()
    app.flow_control.resume()  # the end of a rebalance or recovery
    queued = []
    while not reader.queue.empty():
        queued.append(reader.queue.get_nowait())
    return queued


def test_faust_channel_drops_its_queue_when_flow_resumes() -> None:
    """The defect BatchChannel exists for: queued values vanish, silently."""
    assert asyncio.run(_queued_after_resume(faust.Channel)) == []


def test_batch_channel_keeps_its_queue_when_flow_resumes() -> None:
    assert asyncio.run(_queued_after_resume(BatchChannel)) == ["batch-1", "batch-2"]


async def _put_into_a_full_queue_then_clear() -> bool:
    app = faust.App("batch-channel-test", broker="kafka://127.0.0.1:1")
    app.flow_control.resume()
    channel = faust.Channel(app, maxsize=1)  # Faust's own: cleared, its putters cancelled, when flow resumes
    channel.clone(is_iterator=True)
    inputs = BatchInputs(["crossings"], channel.put)
    await channel.put("queued")
    put = asyncio.create_task(put_batch(inputs, FetchedBatch(TP("crossings", 0), [])))
    await asyncio.sleep(0.01)  # the put waits for room
    app.flow_control.resume()
    return await put


def test_a_put_cancelled_by_a_cleared_queue_reports_the_batch_notput_batch() -> None:
    """The drain loop then rewinds the partition, instead of crashing the fetcher on the CancelledError."""
    assert asyncio.run(_put_into_a_full_queue_then_clear()) is False

"""A real worker with one fault injected at a precise point: ``python -m tests.e2e.faulty_worker FAULT``.

Faults:

``flow-stops-during-fetch``
    The first fetch that brings input records returns just as flow stops,
    as when a rebalance begins while a fetch is under way; flow resumes a
    second later, with no rejoin (so nothing resets the consumer's
    positions). The records fetched are already behind the position.

``busy-loop``
    The event loop is busy for :data:`BUSY_SECONDS` every
    :data:`BUSY_EVERY_SECONDS`, as in a worker under load: records fetched
    meanwhile wait to be read.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from streams.engine.seam import BatchingConsumer

#: a ``busy-loop`` worker's event loop is busy this long every BUSY_EVERY_SECONDS
BUSY_SECONDS = 0.25
BUSY_EVERY_SECONDS = 0.25


def flow_stops_during_fetch() -> None:
    fetch = BatchingConsumer._wait_next_records
    injected = False

    async def fetch_then_stop_flow(self: BatchingConsumer, timeout: float) -> Any:
        nonlocal injected
        records, active = await fetch(self, timeout)
        inputs = self.parts.inputs
        if not injected and records and inputs is not None and any(tp.topic in inputs.topics for tp in records):
            injected = True
            self.app.flow_control.suspend()
            self.stop_flow()

            def resume() -> None:
                self.app.flow_control.resume()
                self.resume_flow()

            asyncio.get_running_loop().call_later(1.0, resume)
            print(f"FAULT flow stopped as {sum(len(r) for r in records.values())} records were fetched", flush=True)
        return records, active

    BatchingConsumer._wait_next_records = fetch_then_stop_flow  # type: ignore[method-assign]


def busy_loop() -> None:
    drain = BatchingConsumer._drain_messages

    async def drain_beside_a_busy_loop(self: BatchingConsumer, fetcher: Any) -> None:
        async def stay_busy() -> None:
            while True:
                await asyncio.sleep(BUSY_EVERY_SECONDS)
                time.sleep(BUSY_SECONDS)  # blocks the event loop, as a heavy batch or a window closing does

        busy = asyncio.ensure_future(stay_busy())
        try:
            await drain(self, fetcher)
        finally:
            busy.cancel()

    BatchingConsumer._drain_messages = drain_beside_a_busy_loop  # type: ignore[method-assign]


FAULTS = {"flow-stops-during-fetch": flow_stops_during_fetch, "busy-loop": busy_loop}

if __name__ == "__main__":
    FAULTS[sys.argv[1]]()
    sys.argv = [sys.argv[0], "worker"]
    from cli import main

    main()

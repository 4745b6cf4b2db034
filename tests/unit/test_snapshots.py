"""A replay's snapshot requests are answered with the state right after their offset (streams/engine/snapshots.py)."""

from __future__ import annotations

import asyncio

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from streams.engine.snapshots import MAX_PENDING_SNAPSHOTS, Snapshots
from tests.factories import T0, crossing_bytes


def _records(first: int, count: int) -> list[tuple[int, bytes | None, int]]:
    return [(offset, crossing_bytes(f"e{offset}", T0 + offset), -1) for offset in range(first, first + count)]


def _apply(snapshots: Snapshots, state: PartitionState, records: list[tuple[int, bytes | None, int]]) -> None:
    effects = Effects()
    snapshots.apply(state, records, effects)
    state.close_windows(effects)
    state.flush()


def test_a_snapshot_is_taken_mid_batch_right_after_its_offset() -> None:
    async def scenario() -> None:
        snapshots = Snapshots()
        state = PartitionState("crossings", 0, "crossing", CoreConfig())
        reference = PartitionState("crossings", 0, "crossing", CoreConfig())
        _apply(snapshots, state, _records(0, 2))
        at_once = snapshots.request(state, 1)
        passed = snapshots.request(state, 0)
        later = snapshots.request(state, 4)
        _apply(snapshots, state, _records(2, 6))
        _apply(Snapshots(), reference, _records(0, 5))
        assert at_once.result()["status"] == "ok" and at_once.result()["offset"] == 1
        assert passed.result() == {"status": "passed", "offset": 1}
        assert later.result() == {"status": "ok", **reference.snapshot()}
        assert state.progress.offset == 7

    asyncio.run(scenario())


def test_waiting_requests_are_bounded_forgotten_when_cancelled_and_answered_on_revocation() -> None:
    async def scenario() -> None:
        snapshots = Snapshots()
        state = PartitionState("crossings", 3, "crossing", CoreConfig())
        waiting = [snapshots.request(state, 100 + i) for i in range(MAX_PENDING_SNAPSHOTS)]
        busy = snapshots.request(state, 999)
        assert busy.result() == {"status": "busy", "pending": MAX_PENDING_SNAPSHOTS}
        waiting[0].cancel()
        await asyncio.sleep(0)  # done callbacks run on the loop
        assert snapshots.request(state, 999).done() is False
        snapshots.forget({3})
        assert all(f.result() == {"status": "not-owned"} for f in waiting[1:])

    asyncio.run(scenario())

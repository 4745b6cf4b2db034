"""Snapshots of a partition's state at given offsets, for verifying a replay against the live state.

A request for an offset not yet applied waits until the batch that applies
it: that batch is then applied one record at a time, and each request is
resolved right after its offset (before the flush), so it sees the state as
it was there. A batch with no request waiting on its partition takes the
core's whole-batch path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from streams.core.effects import Effects
from streams.core.state import PartitionState

#: snapshot requests that may wait on one partition at once (a replay verifying it makes one)
MAX_PENDING_SNAPSHOTS = 64

Snapshot = dict[str, Any]
_Waiting = tuple[int, asyncio.Future[Snapshot]]


class Snapshots:
    def __init__(self) -> None:
        self._waiting: dict[tuple[str, int], list[_Waiting]] = {}

    def request(self, state: PartitionState, offset: int) -> asyncio.Future[Snapshot]:
        """``state``'s snapshot right after ``offset`` is applied (at once if it is the last applied).

        Resolves to ``{"status": "ok", ...}``, or ``{"status": "passed"}`` if
        later offsets are already applied, or ``{"status": "busy"}`` when too
        many requests wait on the partition already.
        """
        future: asyncio.Future[Snapshot] = asyncio.get_running_loop().create_future()
        applied = state.progress.offset
        if applied == offset:
            future.set_result({"status": "ok", **state.snapshot()})
        elif applied > offset:
            future.set_result({"status": "passed", "offset": applied})
        else:
            tp = (state.topic, state.partition)
            waiting = self._waiting.setdefault(tp, [])
            if len(waiting) >= MAX_PENDING_SNAPSHOTS:
                future.set_result({"status": "busy", "pending": len(waiting)})
                return future
            entry = (offset, future)
            waiting.append(entry)
            future.add_done_callback(lambda _: self._forget(tp, entry))
        return future

    def forget(self, partitions: set[int]) -> None:
        """Answer the requests waiting on ``partitions``, which this worker no longer owns, ``not-owned``."""
        for tp in [tp for tp in self._waiting if tp[1] in partitions]:
            for _, future in self._waiting.pop(tp):
                if not future.done():
                    future.set_result({"status": "not-owned"})

    def apply(self, state: PartitionState, records: Iterable[tuple[int, bytes | None, int]], effects: Effects) -> None:
        """Apply ``(offset, value, timestamp_ms)`` records to ``state``, resolving the requests waiting on them."""
        waiting = self._waiting.get((state.topic, state.partition))
        if not waiting:
            state.process_many(records, effects)
            return
        for offset, value, timestamp_ms in records:
            state.process(offset, value, effects, timestamp_ms)
            _resolve(state, waiting)

    def _forget(self, tp: tuple[str, int], entry: _Waiting) -> None:
        waiting = self._waiting.get(tp)
        if waiting is not None and entry in waiting:
            waiting.remove(entry)
            if not waiting:
                del self._waiting[tp]


def _resolve(state: PartitionState, waiting: list[_Waiting]) -> None:
    """Resolve the requests for the offset just applied."""
    applied = state.progress.offset
    for item in list(waiting):
        offset, future = item
        if future.done():
            waiting.remove(item)
        elif applied == offset:
            future.set_result({"status": "ok", **state.snapshot()})
            waiting.remove(item)
        elif applied > offset:  # the offset carried no message (compaction, transaction markers)
            future.set_result({"status": "passed", "offset": applied})
            waiting.remove(item)

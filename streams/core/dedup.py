"""Deduplication: the event ids of one partition within the dedup horizon."""

from __future__ import annotations

import heapq
import math

import orjson


class DedupIndex:
    """The event ids of one partition within the dedup horizon, kept in segments.

    Each flush writes the ids first seen since the previous flush as one
    segment, keyed by the first offset it covers. A segment leaves (all its ids
    at once) when its newest event time is older than the horizon, so an id is
    remembered at least for the horizon. After a crash, the redelivered events
    are recorded again into segments keyed by their own first offsets, which
    covers any segment the crash cut short.

    In memory an id is only a member of a set: an id loaded from a segment past
    the progress record (written before a crash cut the flush short) also keeps
    the offset that carried it, so that the redelivery of that same message is
    not taken for a duplicate.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()
        #: ids loaded from past the progress record: the offset of the message that carried each
        self.uncertain: dict[str, int] = {}
        self._segments: dict[int, tuple[float, list[str]]] = {}
        self._by_age: list[tuple[float, int]] = []
        self._pending_ids: list[str] = []
        self._pending_offsets: list[int] = []
        self._pending_newest = -math.inf
        self._expired: list[int] = []

    def __len__(self) -> int:
        return len(self.seen) + len(self.uncertain)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self.seen or event_id in self.uncertain

    def is_duplicate(self, event_id: str, offset: int) -> bool:
        """Whether a message other than the one at ``offset`` already carried ``event_id``."""
        return event_id in self.seen or self.uncertain.get(event_id, offset) != offset

    def record(self, event_id: str, offset: int, event_time: float) -> None:
        self.seen.add(event_id)
        if self.uncertain:
            self.uncertain.pop(event_id, None)
        self._pending_ids.append(event_id)
        self._pending_offsets.append(offset)
        self._pending_newest = max(self._pending_newest, event_time)

    def add_recorded(self, ids: list[str], offsets: list[int], newest: float) -> None:
        """Queue for the next segment ids already added to :attr:`seen` (and dropped from :attr:`uncertain`)."""
        self._pending_ids.extend(ids)
        self._pending_offsets.extend(offsets)
        self._pending_newest = max(self._pending_newest, newest)

    def load(self, segment: int, data: bytes, applied_through: int) -> None:
        """Restore a segment; ``applied_through`` is the offset of the partition's progress record."""
        ids, offsets, newest = orjson.loads(data)
        if offsets and max(offsets) <= applied_through:  # the whole segment was applied
            self.seen.update(ids)
        else:
            for event_id, offset in zip(ids, offsets, strict=True):
                if offset > applied_through:
                    self.uncertain[event_id] = offset
                else:
                    self.seen.add(event_id)
        self._add_segment(segment, ids, newest)

    def _add_segment(self, segment: int, ids: list[str], newest: float) -> None:
        self._segments[segment] = (newest, ids)
        heapq.heappush(self._by_age, (newest, segment))

    def expire(self, horizon: float) -> None:
        while self._by_age and self._by_age[0][0] < horizon:
            newest, segment = heapq.heappop(self._by_age)
            stored = self._segments.get(segment)
            if stored is None or stored[0] != newest:
                continue  # rewritten since
            del self._segments[segment]
            self.seen.difference_update(stored[1])
            if self.uncertain:
                for event_id in stored[1]:
                    self.uncertain.pop(event_id, None)
            self._expired.append(segment)

    def flush(self) -> list[tuple[int, bytes | None]]:
        out: list[tuple[int, bytes | None]] = [(segment, None) for segment in self._expired]
        if self._pending_ids:
            ids, offsets, newest = self._pending_ids, self._pending_offsets, self._pending_newest
            segment = min(offsets)
            out.append((segment, orjson.dumps([ids, offsets, newest])))  # [[event_id...], [offset...], newest event time]
            self._add_segment(segment, ids, newest)
            self._pending_ids, self._pending_offsets, self._pending_newest = [], [], -math.inf
        self._expired = []
        return out

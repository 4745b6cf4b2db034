"""Deduplication: the event ids of one partition within the dedup horizon."""

from __future__ import annotations

import heapq
import math
import struct
from array import array
from collections.abc import Iterable, Iterator
from hashlib import blake2b
from typing import Final, NamedTuple

import orjson
from preshed.maps import PreshMap

_HALVES: Final = struct.Struct("<QQ").unpack_from
#: a rebuild of the table is not worth it for fewer deleted slots than this
_MIN_REBUILD: Final = 1 << 16
#: the share of a rebuilt table's slots in use (at most: its size is a power of 2; it doubles at 0.6)
_REBUILT_LOAD: Final = 0.55


def id_key(event_id: str) -> tuple[int, int]:
    """The 128-bit key an id is held by: the first 16 bytes of its BLAKE2b digest, as (low, high) halves.

    The high half's lowest bit is always set (the table takes 0 for "no
    value"), so a key has 127 bits. Unsalted, so the same on every run and
    replay; docs/reliability.md has the collision argument.
    """
    low, high = _HALVES(blake2b(event_id.encode()).digest())
    return low, high | 1


def id_keys(event_ids: Iterable[str]) -> Iterator[tuple[int, int]]:
    """:func:`id_key` of each id, without a Python call per id."""
    for low, high in map(_HALVES, map(blake2b.digest, map(blake2b, map(str.encode, event_ids)))):
        yield low, high | 1


def _whole(low: int, high: int) -> int:
    return high << 64 | low


class _Segment(NamedTuple):
    newest: float
    #: the low halves of the ids this segment holds in the table
    lows: array[int]
    #: whole keys of its ids held beside the table (uncertain, or sharing a low half with another id)
    beside: list[int]


class DedupIndex:
    """The event ids of one partition within the dedup horizon, kept in segments.

    Each flush writes the ids first seen since the previous flush as one
    segment, keyed by the first offset it covers. A segment leaves (all its ids
    at once) when its newest event time is older than the horizon, so an id is
    remembered at least for the horizon. After a crash, the redelivered events
    are recorded again into segments keyed by their own first offsets, which
    covers any segment the crash cut short.

    In memory an id is only its 128-bit key (:func:`id_key`): a table maps the
    low half to the high half, and each segment keeps the low halves of its ids
    to take them out when it leaves. An id loaded from a segment past the
    progress record (written before a crash cut the flush short) is held
    beside the table with the offset that carried it, so that the redelivery of
    that same message is not taken for a duplicate; so is, with no offset, an
    id whose low half another id holds in the table already. The changelog
    keeps the ids themselves.
    """

    def __init__(self) -> None:
        self._table = PreshMap()
        #: ids in the table, and slots it still counts for ids taken out (rebuilt when they are many)
        self._held = 0
        self._deleted = 0
        #: whole keys of ids sharing a low half with another id in the table
        self._overflow: set[int] = set()
        #: whole keys of ids loaded from past the progress record: the offset of the message that carried each
        self._uncertain: dict[int, int] = {}
        self._segments: dict[int, _Segment] = {}
        self._by_age: list[tuple[float, int]] = []
        self._pending_ids: list[str] = []
        self._pending_offsets: list[int] = []
        self._pending_newest = -math.inf
        self._pending = _Segment(-math.inf, array("Q"), [])  # its newest is set when it is flushed
        self._expired: list[int] = []
        #: the last id hashed and its key: record() after is_duplicate() on the same id hashes it once
        self._last: tuple[str, tuple[int, int]] = ("", id_key(""))

    def _key(self, event_id: str) -> tuple[int, int]:
        last_id, key = self._last
        if event_id is not last_id:
            key = id_key(event_id)
            self._last = (event_id, key)
        return key

    def __len__(self) -> int:
        return self._held + len(self._overflow) + len(self._uncertain)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def __contains__(self, event_id: str) -> bool:
        low, high = self._key(event_id)
        if self._table[low] == high:
            return True
        whole = _whole(low, high)
        return whole in self._overflow or whole in self._uncertain

    def is_duplicate(self, event_id: str, offset: int) -> bool:
        """Whether a message other than the one at ``offset`` already carried ``event_id``."""
        low, high = self._key(event_id)
        return self._table[low] == high or (bool(self._overflow or self._uncertain) and self._held_beside(low, high, offset))

    def _held_beside(self, low: int, high: int, offset: int) -> bool:
        whole = _whole(low, high)
        return whole in self._overflow or self._uncertain.get(whole, offset) != offset

    def first_seen(self, event_id: str, offset: int, event_time: float) -> bool:
        """:meth:`record` ``event_id`` unless :meth:`is_duplicate`; whether it was recorded (one hash for both)."""
        low, high = self._key(event_id)
        table = self._table
        held = table[low]
        if held is None and not self._overflow and not self._uncertain:  # a new id, and none held beside the table
            table[low] = high
            self._held += 1
            self._pending.lows.append(low)
            self._pending_ids.append(event_id)
            self._pending_offsets.append(offset)
            self._pending_newest = max(self._pending_newest, event_time)
            return True
        if held == high or ((self._overflow or self._uncertain) and self._held_beside(low, high, offset)):
            return False
        self._add_pending(event_id, offset, event_time, low, high, held)
        return True

    def record(self, event_id: str, offset: int, event_time: float) -> None:
        low, high = self._key(event_id)
        self._add_pending(event_id, offset, event_time, low, high, self._table[low])

    def add_recorded(self, ids: list[str], offsets: list[int], newest: float) -> None:
        """:meth:`record` ids found not to be duplicates, at once (``newest``: their newest event time)."""
        for event_id, offset, (low, high) in zip(ids, offsets, id_keys(ids), strict=True):
            self._add_pending(event_id, offset, newest, low, high, self._table[low])

    def _add_pending(self, event_id: str, offset: int, event_time: float, low: int, high: int, held: object) -> None:
        if self._uncertain:
            self._uncertain.pop(_whole(low, high), None)
        self._hold(low, high, held, self._pending)
        self._pending_ids.append(event_id)
        self._pending_offsets.append(offset)
        self._pending_newest = max(self._pending_newest, event_time)

    def _hold(self, low: int, high: int, held: object, segment: _Segment) -> None:
        """Hold a key in the table, or beside it if another id holds its low half; ``segment`` takes it out."""
        if held is None:
            self._table[low] = high
            self._held += 1
            segment.lows.append(low)
        elif held != high:
            whole = _whole(low, high)
            if whole not in self._overflow:
                self._overflow.add(whole)
                segment.beside.append(whole)

    def load(self, segment: int, data: bytes, applied_through: int) -> None:
        """Restore a segment; ``applied_through`` is the offset of the partition's progress record."""
        ids, offsets, newest = orjson.loads(data)
        loaded = _Segment(newest, array("Q"), [])
        table = self._table
        whole_applied = bool(offsets) and max(offsets) <= applied_through
        for offset, (low, high) in zip(offsets, id_keys(ids), strict=True):
            if whole_applied or offset <= applied_through:
                self._hold(low, high, table[low], loaded)
            else:
                whole = _whole(low, high)
                self._uncertain[whole] = offset
                loaded.beside.append(whole)
        self._add_segment(segment, loaded)

    def _add_segment(self, key: int, segment: _Segment) -> None:
        rewritten = self._segments.get(key)
        if rewritten is not None:  # its record is replaced: its ids leave with this one
            segment.lows.extend(rewritten.lows)
            segment.beside.extend(rewritten.beside)
        self._segments[key] = segment
        heapq.heappush(self._by_age, (segment.newest, key))

    def expire(self, horizon: float) -> None:
        while self._by_age and self._by_age[0][0] < horizon:
            newest, key = heapq.heappop(self._by_age)
            segment = self._segments.get(key)
            if segment is None or segment.newest != newest:
                continue  # rewritten since
            del self._segments[key]
            self._take_out(segment)
            self._expired.append(key)
        if self._deleted > max(self._held // 2, _MIN_REBUILD):
            self._rebuild()

    def _take_out(self, segment: _Segment) -> None:
        pop = self._table.pop
        for low in segment.lows:
            pop(low)
        self._held -= len(segment.lows)
        self._deleted += len(segment.lows)
        for whole in segment.beside:
            self._overflow.discard(whole)
            self._uncertain.pop(whole, None)

    def _rebuild(self) -> None:
        """A table without the slots of the ids taken out (the table keeps them until it doubles)."""
        table = PreshMap(initial_size=int(self._held / _REBUILT_LOAD) + 1)
        for low, high in self._table.items():
            table[low] = high
        self._table, self._deleted = table, 0

    def flush(self) -> list[tuple[int, bytes | None]]:
        out: list[tuple[int, bytes | None]] = [(segment, None) for segment in self._expired]
        if self._pending_ids:
            ids, offsets = self._pending_ids, self._pending_offsets
            key = min(offsets)
            newest = self._pending_newest
            out.append((key, orjson.dumps([ids, offsets, newest])))  # [[event_id...], [offset...], newest event time]
            self._add_segment(key, _Segment(newest, self._pending.lows, self._pending.beside))
            self._pending_ids, self._pending_offsets, self._pending_newest = [], [], -math.inf
            self._pending = _Segment(-math.inf, array("Q"), [])
        self._expired = []
        return out

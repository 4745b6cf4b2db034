"""The dedup index on its own: ids held by a 128-bit key, in segments that expire, restored after a crash."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import orjson
import pytest

from streams.core import dedup
from streams.core.dedup import DedupIndex, id_key, id_keys


def test_an_id_is_held_by_the_first_16_bytes_of_its_blake2b_digest() -> None:
    digest = hashlib.blake2b(b"e-1").digest()
    assert id_key("e-1") == (int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little") | 1)
    assert list(id_keys(["e-1", "é-2"])) == [id_key("e-1"), id_key("é-2")]


def test_keys_are_the_same_in_another_process_with_another_hash_seed() -> None:
    """Python's hash() of a str is salted per process; a key must survive restarts and replays."""
    code = "from streams.core.dedup import id_key; print(id_key('crossing-42'))"
    env = os.environ | {"PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == str(id_key("crossing-42"))


def test_a_recorded_id_is_a_duplicate_for_any_other_message() -> None:
    index = DedupIndex()
    assert index.first_seen("a", 0, 10.0)
    assert not index.first_seen("a", 1, 10.0)
    assert index.is_duplicate("a", 0) and index.is_duplicate("a", 7)
    assert not index.is_duplicate("b", 2)
    index.record("b", 2, 11.0)
    index.add_recorded(["c", "d"], [3, 4], 12.0)
    assert len(index) == 4 and all(event_id in index for event_id in "abcd") and "e" not in index


def test_flush_writes_the_ids_themselves_and_a_new_index_loads_them() -> None:
    index = DedupIndex()
    for offset, event_id in enumerate(["x", "y", "z"], start=5):
        index.record(event_id, offset, 100.0 + offset)
    [(segment, data)] = index.flush()
    assert segment == 5 and data is not None
    assert orjson.loads(data) == [["x", "y", "z"], [5, 6, 7], 107.0]
    assert index.flush() == []
    restored = DedupIndex()
    restored.load(segment, data, applied_through=7)
    assert len(restored) == 3 and restored.segment_count == 1
    assert all(restored.is_duplicate(event_id, offset) for offset, event_id in enumerate(["x", "y", "z"], start=5))


def test_a_segment_leaves_whole_once_its_newest_event_time_is_past_the_horizon() -> None:
    index = DedupIndex()
    index.record("old", 0, 10.0)
    index.record("older", 1, 5.0)
    index.flush()
    index.record("new", 2, 20.0)
    index.flush()
    index.expire(10.0)
    assert len(index) == 3
    index.expire(10.5)
    assert len(index) == 1 and "old" not in index and "older" not in index and "new" in index
    assert index.flush() == [(0, None)]  # its changelog record is deleted
    assert index.first_seen("old", 3, 30.0)  # forgotten: counted again


def test_ids_past_the_progress_record_are_not_duplicates_of_their_own_redelivery() -> None:
    """A crash cut a flush short: the segment was written, the progress record (offset 1) was not."""
    index = DedupIndex()
    index.load(0, orjson.dumps([["a", "b", "c"], [0, 1, 2], 50.0]), applied_through=1)
    index.load(3, orjson.dumps([["d", "e"], [3, 4], 60.0]), applied_through=1)
    assert len(index) == 5
    assert index.is_duplicate("a", 0) and index.is_duplicate("b", 9)
    assert not index.is_duplicate("c", 2) and index.is_duplicate("c", 5)
    assert index.first_seen("d", 3, 60.0)  # the same message again: recorded, then held for any offset
    assert index.is_duplicate("d", 3)
    assert not index.first_seen("e", 8, 60.0)  # another message with e's id
    index.expire(55.0)
    assert "a" not in index and "c" not in index and "e" in index and "d" in index


def test_ids_sharing_a_low_half_are_told_apart_by_the_high_half(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 64-bit halves two ids share one about never; a key with a 4-bit low half makes it common."""

    def narrow(event_id: str) -> tuple[int, int]:
        low, high = id_key(event_id)
        return low & 0xF, high

    monkeypatch.setattr(dedup, "id_key", narrow)
    monkeypatch.setattr(dedup, "id_keys", lambda ids: map(narrow, ids))
    index = DedupIndex()
    ids = [f"id-{i}" for i in range(200)]
    assert all(index.first_seen(event_id, offset, 1.0) for offset, event_id in enumerate(ids[:100]))
    [(_, first)] = index.flush()
    assert all(index.first_seen(event_id, offset, 2.0) for offset, event_id in enumerate(ids[100:], start=100))
    assert not any(index.first_seen(event_id, 500, 3.0) for event_id in ids)
    assert len(index) == 200
    index.flush()
    restored = DedupIndex()
    assert first is not None
    restored.load(0, first, applied_through=99)
    assert len(restored) == 100 and all(event_id in restored for event_id in ids[:100])
    index.expire(1.5)
    assert len(index) == 100 and not any(event_id in index for event_id in ids[:100]) and all(event_id in index for event_id in ids[100:])


def test_the_table_is_rebuilt_without_the_slots_of_expired_ids_and_keeps_the_rest() -> None:
    index = DedupIndex()
    for generation in range(4):
        for i in range(40_000):
            index.record(f"{generation}-{i}", generation * 40_000 + i, float(generation))
        index.flush()
    grown = index._table.capacity
    index.expire(2.5)  # 120,000 ids leave: more slots than the 40,000 held
    assert len(index) == 40_000 and index._deleted == 0 and index._table.capacity < grown
    assert all(f"3-{i}" in index for i in range(0, 40_000, 97)) and "2-5" not in index

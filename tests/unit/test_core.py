"""The processing core: dedup, lateness, windows closing, and exactness across crashes."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.records import SeriesCode
from streams.core.state import PartitionState
from tests.factories import T0, crossing_bytes
from tests.support import H


def run(state: PartitionState, values: list[bytes], start: int = 0) -> Effects:
    effects = Effects()
    for offset, value in enumerate(values[start:], start=start):
        state.process(offset, value, effects)
    state.close_windows(effects)
    return effects


def new_state(**config: Any) -> PartitionState:
    return PartitionState("crossings", 0, "crossing", CoreConfig(**config))


def test_duplicates_are_counted_once_and_late_events_not_at_all() -> None:
    state = new_state()
    effects = run(
        state,
        [
            crossing_bytes("a", T0, count=5),
            crossing_bytes("a", T0, count=5),
            crossing_bytes("b", T0 + 10 * H, count=2),
            crossing_bytes("c", T0, count=7),
        ],
    )
    assert effects.outcomes == {"accepted": 2, "duplicate": 1, "late": 1}
    assert state.series[(SeriesCode.BORDER, "upper-lars")].buckets == {T0: 5, T0 + 10 * H: 2}
    assert [d.reason for d in effects.dead_letters] == ["late"]


def test_straggler_within_grace_is_counted() -> None:
    state = new_state()
    effects = run(state, [crossing_bytes("a", T0 + 6 * H), crossing_bytes("b", T0 + 1)])
    assert effects.outcomes == {"accepted": 2}


def test_closed_windows_are_emitted_once_when_stream_time_passes_end_plus_grace() -> None:
    state = new_state()
    first = run(state, [crossing_bytes("a", T0, count=3), crossing_bytes("b", T0 + 6 * H + 59 * 60)])
    assert not [r for r in first.results if r.window == "1h"]
    second = Effects()
    state.process(2, crossing_bytes("c", T0 + 7 * H), second)
    state.close_windows(second)
    assert [(r.series_code, r.start, r.count) for r in second.results if r.window == "1h"] == [
        (SeriesCode.BORDER, T0, 3),
        (SeriesCode.ENTRIES, T0, 3),
        (SeriesCode.EXITS, T0, 3),
    ]
    third = Effects()
    state.process(3, crossing_bytes("d", T0 + 7 * H + 1), third)
    state.close_windows(third)
    assert not [r for r in third.results if r.window == "1h" and r.start == T0]


def test_dedup_forgets_ids_past_the_horizon_and_retention_drops_old_buckets() -> None:
    state = new_state(dedup_horizon=2 * H, retention=3 * H, grace=H)
    run(state, [crossing_bytes("a", T0)])
    state.flush()  # ids are remembered in segments, one per flush
    effects = Effects()
    state.process(1, crossing_bytes("z", T0 + 5 * H), effects)
    state.close_windows(effects)
    assert state.dedup_size == 1
    assert T0 not in state.series[(SeriesCode.BORDER, "upper-lars")].buckets


def replay(table: dict[bytes, bytes]) -> PartitionState:
    state = new_state()
    state.load(sorted(table.items()))
    return state


@settings(max_examples=300, deadline=None)
@given(
    data=st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 40), st.integers(1, 9)), min_size=1, max_size=40),
    batch=st.integers(1, 7),
    crash_batch=st.integers(0, 10),
    cut=st.integers(0, 30),
    committed_back=st.integers(0, 10),
)
def test_crash_anywhere_then_redelivery_gives_exact_counts(
    data: list[tuple[str, int, int]], batch: int, crash_batch: int, cut: int, committed_back: int
) -> None:
    """A crash cuts a flush short; events since the last commit are delivered again."""
    values = [crossing_bytes(eid, T0 + hours * H // 4, count=count) for eid, hours, count in data]
    reference = new_state()
    run(reference, values)

    table: dict[bytes, bytes] = {}
    state = new_state()
    committed = 0
    crashed_at = None
    for index, start in enumerate(range(0, len(values), batch)):
        effects = Effects()  # the batch path the worker takes; the reference above went event by event
        state.process_many([(offset, values[offset], -1) for offset in range(start, min(start + batch, len(values)))], effects)
        state.close_windows(effects)
        writes = state.flush()
        if index == crash_batch:
            writes = writes[: cut % (len(writes) + 1)]
            crashed_at = start
        for key, value in writes:
            table.pop(key, None) if value is None else table.__setitem__(key, value)
        if crashed_at is not None:
            break
        committed = min(start + batch, len(values))
    if crashed_at is not None:
        committed = max(0, committed - committed_back)  # the last commits may not have happened either
        recovered = replay(table)
        run(recovered, values, start=committed)
        state = recovered
    assert {k: (v.buckets, v.total) for k, v in state.series.items()} == {k: (v.buckets, v.total) for k, v in reference.series.items()}


def test_a_dedup_segment_loads_with_its_newest_event_time() -> None:
    """A segment is [ids, offsets, newest event time]."""
    state = new_state()
    state.dedup.load(0, orjson.dumps([["a", "b"], [0, 1], T0 + H]), applied_through=1)
    assert "a" in state.dedup and "b" in state.dedup
    state.dedup.expire(T0 + H)  # the segment's newest id is not older than this horizon: kept
    assert len(state.dedup) == 2
    state.dedup.expire(T0 + H + 1)
    assert len(state.dedup) == 0


def test_a_flushed_segment_keeps_its_newest_event_time_not_the_stream_time() -> None:
    state = new_state(dedup_horizon=2 * H)
    effects = Effects()
    state.process_many([(0, crossing_bytes("a", T0 + 5 * H), -1), (1, crossing_bytes("b", T0 + 4 * H), -1)], effects)
    state.flush()
    state.process_many([(2, crossing_bytes("c", T0 + 3 * H), -1), (3, crossing_bytes("d", T0 + 2 * H), -1)], effects)
    [(_, second)] = [(k, v) for k, v in state.flush() if k.startswith(b"D|")]
    assert orjson.loads(second or b"null") == [["c", "d"], [2, 3], T0 + 3 * H]


def test_record_count_is_the_number_of_state_records_written() -> None:
    """What borderflow_state_keys reports, counted from memory instead of walking the store."""
    state = new_state(retention=2 * 86400, dedup_horizon=86400)
    store: dict[bytes, bytes] = {}
    for day in range(5):
        values = [crossing_bytes(f"e-{day}-{i}", T0 + day * 86400 + i * 600, border=f"b-{i % 3}") for i in range(12)]
        effects = Effects()
        state.process_many([(day * 100 + i, v, -1) for i, v in enumerate(values)], effects)
        state.close_windows(effects)
        for key, value in state.flush():
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        assert state.record_count == len(store)

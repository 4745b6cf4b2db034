"""The same events give the same windows whatever the partitioning, the batching or where processing was interrupted.

Lateness is judged against each partition's stream time (the contract), so
it depends on which events share a partition: across partition counts the
windows are equal for event sets without late events; for a fixed partition
count they are equal always.
"""

from __future__ import annotations

from collections import defaultdict

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from events.times import format_utc
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from tests.factories import T0
from tests.support import H, partition_for

BORDERS = ["upper-lars", "vaalimaa", "kairat", "kyakhta", "torfyanovka", "syrym"]
Totals = dict[tuple[str, str], tuple[dict[int, int], int]]


def message(event_id: str, quarter: int, border: str, count: int) -> tuple[bytes, bytes]:
    body = {
        "type": "crossing",
        "event_id": event_id,
        "occurred_at": format_utc(T0 + quarter * H // 4),
        "border": border,
        "from_country": "RU",
        "to_country": "KZ" if border in ("kairat", "syrym") else "GE",
        "count": count,
    }
    return border.encode(), orjson.dumps(body)


def process_partition(values: list[bytes], partition: int, batch: int, crash_batch: int | None, cut: int, back: int) -> PartitionState:
    """One partition's state after every value, with one crash (cut flush, lagging commit) if asked."""
    config = CoreConfig()
    table: dict[bytes, bytes] = {}
    state = PartitionState("crossings", partition, "crossing", config)
    committed = 0
    start = 0
    crashed = False
    index = 0
    while start < len(values):
        effects = Effects()
        state.process_many([(offset, values[offset], -1) for offset in range(start, min(start + batch, len(values)))], effects)
        state.close_windows(effects)
        writes = state.flush()
        if index == crash_batch and not crashed:
            writes = writes[: cut % (len(writes) + 1)]
        for key, value in writes:
            table.pop(key, None) if value is None else table.__setitem__(key, value)
        if index == crash_batch and not crashed:
            crashed = True
            start = max(0, committed - back)  # redelivered from an older commit
            state = PartitionState("crossings", partition, "crossing", config)
            state.load(sorted(table.items()))
        else:
            start = min(start + batch, len(values))
            committed = start
        index += 1
    return state


def totals(messages: list[tuple[bytes, bytes]], partitions: int, batch: int, crash_batch: int | None, cut: int, back: int) -> Totals:
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for key, value in messages:
        by_partition[partition_for(key, partitions)].append(value)
    merged: dict[tuple[str, str], tuple[dict[int, int], int]] = {}
    for partition, values in by_partition.items():
        state = process_partition(values, partition, batch, crash_batch, cut, back)
        for series_id, series in state.series.items():
            buckets, total = merged.get(series_id, ({}, 0))
            for bucket, count in series.buckets.items():
                buckets[bucket] = buckets.get(bucket, 0) + count
            merged[series_id] = (buckets, total + series.total)
    return merged


def event_sets(quarters: int) -> st.SearchStrategy[list[tuple[bytes, bytes]]]:
    """Crossings over ``quarters`` quarter hours; a repeated id is a resent event, so it has the same key."""
    return st.lists(
        st.tuples(st.integers(0, 12), st.integers(0, quarters), st.sampled_from(BORDERS), st.integers(1, 9)), min_size=1, max_size=60
    ).map(lambda items: [message(f"{border}-{n}", quarter, border, count) for n, quarter, border, count in items])


@settings(max_examples=200, deadline=None)
@given(
    messages=event_sets(quarters=23),  # under 6 h apart: nothing is late whatever shares a partition
    partitions=st.sampled_from([2, 3, 4, 7]),
    batch=st.integers(1, 9),
    crash_batch=st.none() | st.integers(0, 8),
    cut=st.integers(0, 20),
    back=st.integers(0, 10),
)
def test_without_late_events_windows_do_not_depend_on_partitions_batches_or_interruptions(
    messages: list[tuple[bytes, bytes]], partitions: int, batch: int, crash_batch: int | None, cut: int, back: int
) -> None:
    reference = totals(messages, 1, len(messages), None, 0, 0)
    assert totals(messages, partitions, batch, crash_batch, cut, back) == reference


@settings(max_examples=200, deadline=None)
@given(
    messages=event_sets(quarters=80),  # 20 h: some events are late, judged per partition
    partitions=st.sampled_from([1, 2, 4]),
    batch=st.integers(1, 9),
    crash_batch=st.none() | st.integers(0, 8),
    cut=st.integers(0, 20),
    back=st.integers(0, 10),
)
def test_with_late_events_and_duplicates_windows_do_not_depend_on_batches_or_interruptions(
    messages: list[tuple[bytes, bytes]], partitions: int, batch: int, crash_batch: int | None, cut: int, back: int
) -> None:
    reference = totals(messages, partitions, len(messages), None, 0, 0)
    assert totals(messages, partitions, batch, crash_batch, cut, back) == reference

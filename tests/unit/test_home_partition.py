"""Each event is judged in its home partition, wherever its producer put it, and forwarding is exact across crashes."""

from __future__ import annotations

import os
from collections import defaultdict

from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from events.codec import decode
from events.partitioning import home_partition, murmur2, partition_for_key
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.records import SeriesCode
from streams.core.state import PartitionState
from tests.factories import T0
from tests.factories import crossing_bytes as crossing
from tests.support import H

BORDERS = ["upper-lars", "vaalimaa", "zhaisan", "altanbulag", "syrym", "kairak"]


def to_signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def test_murmur2_is_the_java_clients() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2
    vectors = {
        "21": -973932308,
        "foobar": -790332482,
        "a-little-bit-long-string": -985981536,
        "a-little-bit-longer-string": -1486304829,
        "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        "abc": 479470107,
    }
    for text, expected in vectors.items():
        assert to_signed(murmur2(text.encode())) == expected
    for size in range(40):
        data = os.urandom(size)
        assert murmur2(data) == aiokafka_murmur2(data) & 0xFFFFFFFF


def test_the_home_is_where_kafkas_default_partitioner_puts_the_events_key() -> None:
    event = decode(crossing("a", T0, "upper-lars"))
    assert home_partition(event, 4) == partition_for_key(b"upper-lars", 4) == (aiokafka_murmur2(b"upper-lars") & 0x7FFFFFFF) % 4


def away_and_home(border: str, partitions: int = 4) -> tuple[int, int]:
    home = partition_for_key(border.encode(), partitions)
    return (home + 1) % partitions, home


def test_an_event_away_from_home_is_forwarded_and_leaves_the_state_alone() -> None:
    away, home = away_and_home("upper-lars")
    state = PartitionState("crossings", away, "crossing", CoreConfig(partitions=4))
    effects = Effects()
    state.process_many([(0, crossing("a", T0, "upper-lars", 5), -1), (1, crossing("b", T0 + 9 * H, "upper-lars"), -1)], effects)
    assert effects.forwards == [(0, home), (1, home)]
    assert effects.outcomes == {"forwarded": 2}
    assert state.series == {} and len(state.dedup) == 0 and state.progress.stream_time is None
    assert state.progress.offset == 1  # done with here


def test_an_invalid_or_wrongly_typed_message_is_dead_lettered_where_it_arrived() -> None:
    away, _ = away_and_home("upper-lars")
    state = PartitionState("departures", away, "departure", CoreConfig(partitions=4))
    effects = Effects()
    state.process_many([(0, crossing("a", T0, "upper-lars"), -1), (1, b"{", -1)], effects)
    assert effects.forwards == []
    assert [letter.reason for letter in effects.dead_letters] == ["invalid:type", "invalid:$"]


def test_a_redelivered_event_away_from_home_is_forwarded_again() -> None:
    """Its forward may not have been delivered before a crash: the input was not committed then."""
    away, home = away_and_home("vaalimaa")
    state = PartitionState("crossings", away, "crossing", CoreConfig(partitions=4))
    values = [crossing("a", T0, "vaalimaa"), crossing("b", T0, BORDERS_HOME[away]), crossing("c", T0, "vaalimaa")]
    state.process_many([(offset, value, -1) for offset, value in enumerate(values)], Effects())
    again = Effects()
    state.process_many([(offset, value, -1) for offset, value in enumerate(values)], again)
    assert again.forwards == [(0, home), (2, home)]
    assert again.outcomes == {"skipped": 3}
    assert state.series[(SeriesCode.BORDER, BORDERS_HOME[away])].total == 1


#: a border whose home is each partition of four
BORDERS_HOME = {partition_for_key(b.encode(), 4): b for b in [*BORDERS, "narva", "kazbegi", "sarpi", "lars", "torfyanovka"]}


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(
        st.tuples(st.integers(0, 19), st.sampled_from(BORDERS), st.integers(0, 30), st.integers(0, 3)), min_size=1, max_size=60
    ),
    steps=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6), st.booleans()), max_size=120),
)
def test_copies_anywhere_with_crashes_mid_forward_count_each_event_once(
    messages: list[tuple[int, str, int, int]], steps: list[tuple[int, int, bool]]
) -> None:
    """Producers put each copy in any partition; workers forward, and crash after a flush but before its forwards are delivered.

    A crash loses the batch's forwards and takes the partition back to its
    committed offset (commits need every forward delivered), with its state
    as flushed. Whatever the order, every distinct event is counted exactly once, in its home.
    """
    partitions = 4
    config = CoreConfig(partitions=partitions, grace=100 * H)  # nothing is late: lateness is checked elsewhere
    events: dict[int, tuple[str, int]] = {}
    logs: dict[int, list[bytes]] = defaultdict(list)
    for number, drawn_border, drawn_quarter, partition in messages:
        border, quarter = events.setdefault(number, (drawn_border, drawn_quarter))  # a copy repeats its original
        logs[partition].append(crossing(f"e-{number}", T0 + quarter * H // 4, border, number + 1))
    states = {p: PartitionState("crossings", p, "crossing", config) for p in range(partitions)}
    changelogs: dict[int, dict[bytes, bytes]] = {p: {} for p in range(partitions)}
    position = dict.fromkeys(range(partitions), 0)
    committed = dict.fromkeys(range(partitions), 0)

    def step(partition: int, size: int, crash: bool) -> None:
        log, start = logs[partition], position[partition]
        if start >= len(log):
            return
        batch = [(offset, log[offset], -1) for offset in range(start, min(start + size, len(log)))]
        effects = Effects()
        state = states[partition]
        state.process_many(batch, effects)
        state.close_windows(effects)
        for key, value in state.flush():
            if value is None:
                changelogs[partition].pop(key, None)
            else:
                changelogs[partition][key] = value
        if crash:  # the changelog made it, the forwards did not: read again from the committed offset
            restored = PartitionState("crossings", partition, "crossing", config)
            restored.load(changelogs[partition].items())
            states[partition] = restored
            position[partition] = committed[partition]
            return
        for offset, home in effects.forwards:
            logs[home].append(log[offset])
        position[partition] = committed[partition] = batch[-1][0] + 1

    for partition, size, crash in steps:
        step(partition, size, crash)
    while any(position[p] < len(logs[p]) for p in range(partitions)):  # then run to the end without crashes
        for p in range(partitions):
            step(p, 6, False)

    totals: dict[str, int] = defaultdict(int)
    for p, state in states.items():
        for (kind, border), series in state.series.items():
            if kind == SeriesCode.BORDER:
                assert partition_for_key(border.encode(), partitions) == p  # counted only at home
                totals[border] += series.total
    expected: dict[str, int] = defaultdict(int)
    for number, (border, _) in events.items():
        expected[border] += number + 1
    assert dict(totals) == dict(expected)

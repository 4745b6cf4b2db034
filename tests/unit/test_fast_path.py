"""The hot path agrees with the reference path: validation, processing and window closing.

The fast validators and :meth:`PartitionState.process_many` exist only for
speed; each is checked here against the plain code it shortcuts, on inputs
built to sit on the edges of what is valid.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from events.model import Crossing, Departure
from events.validation import InvalidEvent, fast_crossing, fast_departure, validate
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from streams.core.windows import WindowSpec, closing_windows, window_counts
from tests.factories import CROSSING, DEPARTURE, T0, crossing_bytes
from tests.support import H

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    12.0,
    1.5,
    1_000_000,
    1_000_001,
    "",
    " ",
    "x" * 129,
    "x" * 5000,
    "RU",
    "GE",
    "ru",
    "XX",
    "upper-lars",
    "Upper-Lars",
    "-lars",
    "a" * 65,
    "car",
    "plane",
    "c\x00",
    "c\u2028d",
    "crossing",
    "departure",
    "statement",
    "2022-09-21T10:00:00Z",
    "2022-09-21T10:00:59Z",
    "2022-09-21T10:00:60Z",
    "2022-09-21T24:00:00Z",
    "2022-02-30T10:00:00Z",
    "2022-09-21t10:00:00Z",
    "2022-09-21 10:00:00Z",
    "2022-09-21T10:00:00z",
    "2022-09-21T10:00:00+03:00",
    "2022-09-21T10:00:00",
    "2022-09-21T10:00:0aZ",
    "2022-09-21T10:00: 1Z",
    "2022-09-21T10:00:+1Z",
    "2022-09-21T10:00:00.5Z",
    "２０２２-09-21T10:00:00Z",
    [],
    {},
    ["RU"],
]
CROSSING_FIELDS = ["type", "event_id", "occurred_at", "border", "from_country", "to_country", "count", "mode", "source", "schema_version"]
DEPARTURE_FIELDS = ["type", "event_id", "occurred_at", "country", "destination", "count", "border", "source", "schema_version"]


def mutated(base: dict[str, Any], fields: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with a few fields set to odd values or removed."""
    change = st.tuples(st.sampled_from(fields), st.sampled_from([*ODD_VALUES, "<del>"]))
    return st.lists(change, max_size=3).map(lambda changes: _apply(base, changes))


def _apply(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(base) | {"occurred_at": "2022-09-21T10:00:00Z"}
    for field, value in changes:
        if value == "<del>":
            obj.pop(field, None)
        else:
            obj[field] = value
    return obj


def essentials(obj: dict[str, Any]) -> tuple[str, float, int, tuple[str, ...]] | None:
    try:
        event = validate(obj)
    except InvalidEvent:
        return None
    if isinstance(event, Crossing):
        return event.event_id, event.occurred_at, event.count, (event.border, event.to_country, event.from_country)
    assert isinstance(event, Departure)
    return event.event_id, event.occurred_at, event.count, (event.country,)


@settings(max_examples=1500, deadline=None)
@given(obj=mutated(CROSSING, CROSSING_FIELDS) | mutated(DEPARTURE, DEPARTURE_FIELDS))
def test_fast_validation_accepts_only_what_validate_accepts_and_reads_the_same_values(obj: dict[str, Any]) -> None:
    for fast in (fast_crossing, fast_departure):
        got = fast(obj)
        if got is not None:  # None only means "ask validate"
            assert got == essentials(obj)
            assert all(type(key) is str for key in got[3])


def test_fast_validation_takes_the_common_shapes() -> None:
    assert fast_crossing(CROSSING | {"occurred_at": "2022-09-21T07:00:00Z"}) == (
        "c-1",
        1663743600.0,
        12,
        ("upper-lars", "GE", "RU"),
    )
    assert fast_departure(DEPARTURE | {"occurred_at": "2022-09-22T04:00:00Z"}) is not None
    assert fast_crossing(DEPARTURE) is None and fast_departure(CROSSING) is None


def test_times_learned_from_one_event_are_exact_for_every_second_of_that_minute() -> None:
    for second in range(60):
        text = f"2022-09-21T10:17:{second:02d}Z"
        got = fast_crossing(CROSSING | {"occurred_at": text})
        assert got is not None and got[1] == validate(CROSSING | {"occurred_at": text}).occurred_at


def crossing(event_id: str, quarter: int, border: str, count: int) -> bytes:
    return crossing_bytes(event_id, T0 + quarter * H // 4, border, count)


def messages() -> st.SearchStrategy[list[bytes | None]]:
    ids = st.integers(0, 15).map(lambda n: f"e-{n}")
    valid = st.builds(crossing, ids, st.integers(0, 120), st.sampled_from(["a", "b"]), st.integers(1, 5))
    odd = st.sampled_from(
        [
            None,
            b"",
            b"{",
            b"[]",
            b'{"type": "crossing"}',
            b"\xff\xfe",
            orjson.dumps(DEPARTURE),
            orjson.dumps(CROSSING),  # valid, with an offset in its time: not the common shape
            orjson.dumps(CROSSING | {"count": 3.0}),
            b"x" * 70_000,
        ]
    )
    return st.lists(st.one_of(valid, valid, valid, odd), max_size=80)


@settings(max_examples=400, deadline=None)
@given(
    values=messages(),
    batch=st.integers(1, 12),
    since=st.none() | st.just(float(T0 + 10 * H)),
    partitions=st.sampled_from([None, 2, 3]),  # 2: "a" and "b" are home in partition 0 and "upper-lars" is not; 3: none is
    earliest=st.sampled_from([0.0, float(T0 + 5 * H)]),  # the second: some valid crossings are out of range
)
def test_process_many_is_process_on_each_message(
    values: list[bytes | None], batch: int, since: float | None, partitions: int | None, earliest: float
) -> None:
    config = CoreConfig(since=since, grace=2 * H, dedup_horizon=6 * H, retention=30 * H, partitions=partitions, earliest=earliest)
    now = float(T0 + 24 * H)
    one_by_one = PartitionState("crossings", 0, "crossing", config, clock=lambda: now)
    batched = PartitionState("crossings", 0, "crossing", config, clock=lambda: now)
    # no timestamp (the clock is the reference), stamped at T0 (later than T0 + 6 h is in the future), stamped ahead of the clock
    stamps = (-1, T0 * 1000, (T0 + 48 * H) * 1000)
    for start in range(0, len(values), batch):
        chunk = [(offset, value, stamps[offset % 3]) for offset, value in enumerate(values[start : start + batch], start=start)]
        expected, got = Effects(), Effects()
        for offset, value, stamp in chunk:
            one_by_one.process(offset, value, expected, stamp)
        batched.process_many(chunk, got)
        one_by_one.close_windows(expected)
        batched.close_windows(got)
        assert got.outcomes == {k: v for k, v in expected.outcomes.items() if v}
        assert got.dead_letters == expected.dead_letters
        assert got.results == expected.results
        assert got.forwards == expected.forwards
        assert sorted(batched.flush(), key=repr) == sorted(one_by_one.flush(), key=repr)
    assert batched.snapshot() == one_by_one.snapshot()
    assert len(batched.dedup) == len(one_by_one.dedup)


def reference_closing(buckets: dict[int, int], spec: WindowSpec, base: int, after: float, through: float) -> list[tuple[int, int]]:
    return [(start, count) for start, count in sorted(window_counts(buckets, spec, base).items()) if after < start + spec.size <= through]


@settings(max_examples=600, deadline=None)
@given(
    hours=st.dictionaries(st.integers(0, 100), st.integers(0, 9), max_size=40),
    spec=st.sampled_from([WindowSpec("1h", H, H), WindowSpec("24h", 24 * H, H), WindowSpec("6h/2h", 6 * H, 2 * H)]),
    after=st.none() | st.integers(-30 * 4, 110 * 4),
    moved=st.integers(0, 200 * 4),
)
def test_closing_windows_are_the_windows_ending_in_the_interval(
    hours: dict[int, int], spec: WindowSpec, after: int | None, moved: int
) -> None:
    buckets = {T0 - T0 % H + h * H: c for h, c in hours.items()}
    start = -math.inf if after is None else T0 + after * H / 4
    through = (T0 if after is None else start) + moved * H / 4
    got = list(closing_windows(buckets, spec, H, start, through))
    assert got == reference_closing(buckets, spec, H, start, through)
    full = {b: 1 for b in range(T0 - T0 % H - 48 * H, T0 - T0 % H + 250 * H, H)}  # a window of every start, all non-empty
    assert spec.any_end_between(start, through) == bool(reference_closing(full, spec, H, start, through))

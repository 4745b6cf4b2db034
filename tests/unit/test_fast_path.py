"""The schema agrees with the field-by-field reading, and the batch path with the per-message path.

The schema (the records of events/model.py, checked by msgspec) alone decides
what is accepted; :func:`check_field_by_field`, written apart from it rule by
rule, names the field of what it refuses. Each is checked here against the
other on inputs built to sit on the edges of what is valid, and
:meth:`PartitionState.process_many` against :meth:`PartitionState.process`.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.codec import decode
from events.model import Event
from events.validation import InvalidEvent, check_field_by_field, read_json, validate
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from streams.core.windows import WindowSpec, closing_windows, window_counts
from tests.factories import CROSSING, DEPARTURE, STATEMENT, T0, crossing_bytes, registration
from tests.support import H

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    -0.0,
    1.0,
    12.0,
    1.5,
    2,
    1_000_000,
    1_000_001,
    1e15,
    1e15 + 2,
    10**15,
    10**15 + 1,
    math.inf,
    -math.inf,
    math.nan,
    "",
    " ",
    "x" * 129,
    "x" * 5000,
    "é" * 64,
    "😀" * 128,
    "😀" * 4096,
    "😀" * 4097,
    "RU",
    "GE",
    "ru",
    "XX",
    "upper-lars",
    "upper-lars\n",
    "Upper-Lars",
    "-lars",
    "a" * 64,
    "a" * 65,
    "car",
    "plane",
    "entries",
    "c\x00",
    "c\u2028d",
    "c\u00a0d",
    "crossing",
    "departure",
    "statement",
    "checkpoint",
    "2022-09-21T10:00:00Z",
    "2022-09-21T10:00:59Z",
    "2022-09-21T10:00:60Z",
    "2022-09-21T24:00:00Z",
    "2022-02-30T10:00:00Z",
    "2022-09-21t10:00:00Z",
    "2022-09-21 10:00:00Z",
    "2022-09-21T10:00:00z",
    "2022-09-21T10:00:00+03:00",
    "2022-09-21T10:00:00+0300",
    "2022-09-21T10:00:00+24:00",
    "2022-09-21T10:00:00-23:59",
    "2022-09-21T10:00:00",
    "2022-09-21T10:00:0aZ",
    "2022-09-21T10:00: 1Z",
    "2022-09-21T10:00:+1Z",
    "2022-09-21T10:00:00.5Z",
    "2022-09-21T09:59:59.999999999Z",
    "2022-09-21T10:00:00.0000005Z",
    "2022-09-21T10:00:00.1234567890Z",
    "2022-09-21T10:00:00Z\n",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00-01:00",
    "9999-12-31T23:59:59-01:00",
    "２０２２-09-21T10:00:00Z",
    [],
    {},
    ["RU"],
    ["RU", "GE"],
    ["GE", "GE"],
    ["RU", "GE", "KZ"],
    ["RU", "ZZ"],
    ["RU", 1],
]
FIELDS = {
    "crossing": ["type", "event_id", "occurred_at", "border", "from_country", "to_country", "count", "mode", "source", "schema_version"],
    "departure": ["type", "event_id", "occurred_at", "country", "destination", "count", "border", "source", "schema_version"],
    "statement": ["type", "event_id", "issued_at", "source", "country", "metric", "value", "since", "border", "url", "quote"],
    "checkpoint": ["type", "event_id", "registered_at", "border", "countries", "name", "source", "schema_version"],
}
EXAMPLES = {
    "crossing": CROSSING | {"occurred_at": "2022-09-21T10:00:00Z"},
    "departure": DEPARTURE | {"occurred_at": "2022-09-21T10:00:00Z"},
    "statement": STATEMENT,
    "checkpoint": registration("r-1", T0, "upper-lars"),
}


def mutated(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    """An example of ``kind`` with a few fields set to odd values or removed, or an unknown one added."""
    change = st.tuples(st.sampled_from([*FIELDS[kind], "weather"]), st.sampled_from([*ODD_VALUES, "<del>"]))
    return st.lists(change, max_size=3).map(lambda changes: _apply(EXAMPLES[kind], changes))


def _apply(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(base)
    for field, value in changes:
        if value == "<del>":
            obj.pop(field, None)
        else:
            obj[field] = value
    return obj


def verdict(judge: Any, value: Any) -> Event | tuple[str, str]:
    try:
        return judge(value)  # type: ignore[no-any-return]
    except InvalidEvent as exc:
        return exc.field, exc.reason


ANY_MESSAGE = st.sampled_from(sorted(FIELDS)).flatmap(mutated)


@settings(max_examples=3000, deadline=None)
@given(obj=ANY_MESSAGE)
def test_the_schema_accepts_exactly_what_the_field_by_field_reading_accepts_and_reads_the_same_event(obj: dict[str, Any]) -> None:
    reference = verdict(check_field_by_field, obj)
    got = verdict(validate, obj)
    assert got == reference  # the same event, or the same field and reason: the contract's words
    assert type(got) is type(reference)


@settings(max_examples=1500, deadline=None)
@given(obj=ANY_MESSAGE)
def test_bytes_are_judged_as_the_json_value_they_hold(obj: dict[str, Any]) -> None:
    try:
        data = orjson.dumps(obj)
    except TypeError:
        return  # not JSON (NaN is written as null, not refused)
    expected = verdict(validate, orjson.loads(data))
    assert verdict(decode, data) == expected
    fast = read_json(data)
    assert fast is None or fast == expected  # None only means "ask decode"


@pytest.mark.parametrize(
    "data",
    [
        b'{"type": "crossing", "weather": "\xff"}',
        b'{"type": "crossing", "weather": 1e999}',
        b'{"type": "crossing", "weather": ' + b"[" * 2000 + b"]" * 2000 + b"}",
        b'{"type": "crossing", "event_id": "\\ud800"}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_json_the_schema_would_skip_is_read_in_full(data: bytes) -> None:
    """Unknown fields are read by orjson, as before the schema: invalid JSON in them is refused, not skipped."""
    valid = orjson.loads(orjson.dumps(CROSSING))
    body = orjson.dumps(valid)[:-1] + b"," + data.partition(b",")[2] if data.startswith(b'{"type": "crossing",') else data
    assert read_json(body) is None
    with pytest.raises(InvalidEvent) as info:
        decode(body)
    assert info.value.field == "$" and info.value.reason.startswith(("invalid JSON", "invalid UTF-8"))


def test_the_schema_reads_the_common_shapes() -> None:
    event = read_json(orjson.dumps(CROSSING | {"occurred_at": "2022-09-21T07:00:00Z"}))
    assert event is not None and (event.event_id, event.event_time) == ("c-1", 1663743600.0)
    assert read_json(orjson.dumps(DEPARTURE)) == validate(DEPARTURE)


def test_times_learned_from_one_event_are_exact_for_every_second_of_that_minute() -> None:
    for second in range(60):
        text = f"2022-09-21T10:17:{second:02d}Z"
        event = read_json(orjson.dumps(CROSSING | {"occurred_at": text}))
        assert event is not None and event.event_time == check_field_by_field(CROSSING | {"occurred_at": text}).event_time


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
            orjson.dumps(CROSSING),  # valid, with an offset in its time
            orjson.dumps(CROSSING | {"count": 3.0}),
            orjson.dumps(CROSSING | {"weather": "rain"}),  # an unknown field: read in full by decode(), through process
            orjson.dumps(CROSSING | {"schema_version": 2}),
            orjson.dumps(registration("r-1", T0, "a", ("GE", "AM"))),  # "a" counted between other countries from here on
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

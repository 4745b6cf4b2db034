from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.codec import decode, encode
from events.model import Crossing, Departure, Statement
from events.partitioning import home_key
from events.validation import InvalidEvent, validate
from tests.factories import CROSSING, DEPARTURE, STATEMENT


def reject(obj: object) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        validate(obj)
    return info.value


def test_valid_events_become_typed_records_in_utc_seconds() -> None:
    crossing = validate(CROSSING)
    assert isinstance(crossing, Crossing)
    assert crossing.occurred_at == 1663743600.0  # 07:00Z
    assert isinstance(validate(DEPARTURE), Departure)
    statement = validate(STATEMENT)
    assert isinstance(statement, Statement) and statement.value == 98000


def test_unknown_fields_are_kept_out_of_the_record_but_do_not_reject() -> None:
    assert validate(CROSSING | {"weather": "rain"}) == validate(CROSSING)


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"type": None}, "type", "missing"),
        ({"type": "teleport"}, "type", "unknown type"),
        ({"event_id": ""}, "event_id", "empty"),
        ({"event_id": "x" * 129}, "event_id", "too long"),
        ({"event_id": "a\nb"}, "event_id", "not printable"),
        ({"count": 0}, "count", "out of range"),
        ({"count": 2.5}, "count", "wrong type"),
        ({"count": True}, "count", "wrong type"),
        ({"count": "5"}, "count", "wrong type"),
        ({"to_country": "XX"}, "to_country", "not an ISO 3166-1"),
        ({"to_country": "ge"}, "to_country", "not an ISO 3166-1"),
        ({"to_country": "RU"}, "to_country", "same as from_country"),
        ({"occurred_at": "2022-09-21T10:00:00"}, "occurred_at", "bad timestamp"),
        ({"occurred_at": "yesterday"}, "occurred_at", "bad timestamp"),
        ({"occurred_at": "2022-02-30T10:00:00Z"}, "occurred_at", "bad timestamp"),
        ({"occurred_at": 1663743600}, "occurred_at", "wrong type"),
        ({"border": "Upper Lars"}, "border", "not a lowercase slug"),
        ({"mode": "horse"}, "mode", "unknown value"),
        ({"schema_version": 99}, "schema_version", "unsupported"),
    ],
)
def test_crossing_rejections_name_field_and_reason(change: dict[str, Any], field: str, reason: str) -> None:
    error = reject({k: v for k, v in (CROSSING | change).items() if v is not None})
    assert error.field == field
    assert reason in error.reason


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "vibes"}, "metric"),
        ({"value": -1}, "value"),
        ({"value": float("nan")}, "value"),
        ({"since": "2022-09-28T00:00:00Z"}, "since"),
        ({"source": 5}, "source"),
    ],
)
def test_statement_rejections(change: dict[str, Any], field: str) -> None:
    assert reject(STATEMENT | change).field == field


def test_non_object_and_missing_fields() -> None:
    assert reject([1, 2]).field == "$"
    missing = dict(DEPARTURE)
    del missing["destination"]
    assert (reject(missing).field, reject(missing).reason) == ("destination", "missing")


def test_decode_rejects_bad_bytes_with_reason() -> None:
    with pytest.raises(InvalidEvent, match="invalid JSON"):
        decode(b"{oops")
    with pytest.raises(InvalidEvent, match="invalid"):
        decode(b'{"type": "\xff"}')
    with pytest.raises(InvalidEvent, match="oversize"):
        decode(b" " * 70_000)
    with pytest.raises(InvalidEvent, match="tombstone"):
        decode(None)


def test_fractional_seconds_beyond_microseconds_are_accepted() -> None:
    event = validate(CROSSING | {"occurred_at": "2022-09-21T09:59:59.999999999Z"})
    assert 1663754399 < event.event_time < 1663754400


def test_home_key_groups_duplicates() -> None:
    assert home_key(validate(CROSSING)) == b"upper-lars"
    assert home_key(validate(DEPARTURE)) == b"KZ"


@given(
    count=st.integers(1, 1_000_000),
    minute=st.integers(0, 59),
    offset=st.sampled_from(["Z", "+05:45", "-03:30", "+14:00", "-12:00"]),
    event_id=st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")), min_size=1, max_size=128),
)
def test_codec_round_trip(count: int, minute: int, offset: str, event_id: str) -> None:
    if not event_id.isprintable():
        return
    event = validate(CROSSING | {"count": count, "event_id": event_id, "occurred_at": f"2022-09-21T10:{minute:02d}:00{offset}"})
    assert decode(encode(event)) == event


@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_invalid_event(data: bytes) -> None:
    try:
        decode(data)
    except InvalidEvent as exc:
        assert exc.field and exc.reason


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    )
)
def test_random_json_values_are_rejected_cleanly(value: object) -> None:
    try:
        validate(orjson.loads(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)) if not isinstance(value, float) else value)
    except InvalidEvent as exc:
        assert exc.field


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
@pytest.mark.parametrize("field", ["issued_at", "occurred_at"])
def test_a_time_outside_the_years_1_to_9999_in_utc_is_invalid_and_names_its_field(field: str, moment: str) -> None:
    """Regression: a statement issued in year 0 in UTC crashed the input agent, then counted as a duplicate on the re-read."""
    event = (
        {"type": "statement", "event_id": "s-y0", "issued_at": moment, "source": "x", "country": "KZ", "metric": "entries", "value": 5}
        if field == "issued_at"
        else {
            "type": "crossing",
            "event_id": "c-y0",
            "occurred_at": moment,
            "border": "upper-lars",
            "from_country": "RU",
            "to_country": "GE",
            "count": 1,
        }
    )
    with pytest.raises(InvalidEvent) as refused:
        decode(orjson.dumps(event))
    assert refused.value.field == field and "outside the years" in refused.value.reason


def test_a_statement_issued_in_year_0_in_utc_is_dead_lettered_not_a_crash() -> None:
    from streams.core.config import CoreConfig
    from streams.core.effects import Effects
    from streams.core.state import PartitionState

    state = PartitionState("statements", 0, "statement", CoreConfig())
    effects = Effects()
    value = orjson.dumps(
        {
            "type": "statement",
            "event_id": "s-y0",
            "issued_at": "0001-01-01T00:00:00+01:00",
            "source": "x",
            "country": "KZ",
            "metric": "entries",
            "value": 5,
        }
    )
    state.process_many([(0, value, -1), (1, value, -1)], effects)
    assert effects.outcomes == {"invalid": 2}
    assert [letter.reason for letter in effects.dead_letters] == ["invalid:issued_at", "invalid:issued_at"]
    assert state.statements == {}

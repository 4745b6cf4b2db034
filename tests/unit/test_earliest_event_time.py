"""An event time before BORDERFLOW_EARLIEST is out of range: dead-lettered, moving nothing (streams/core/stream_time.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.times import format_utc, parse_rfc3339
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from streams.settings import Settings
from tests.factories import T0, crossing_bytes, departure, statement
from tests.support import H


def state(config: CoreConfig | None = None, topic: str = "departures", event_type: str = "departure") -> PartitionState:
    return PartitionState(topic, 0, event_type, config or CoreConfig(), clock=lambda: T0 + 24 * H)


def test_a_departure_in_year_1_is_dead_lettered_on_a_partition_without_stream_time() -> None:
    """Regression: it was counted, and /net-inflow answered a window starting at "1-01-01T00:00:00Z"."""
    partition, effects = state(), Effects()
    partition.process_many([(0, orjson.dumps(departure("d-old", "0001-01-01T00:00:00Z")), -1)], effects)
    assert effects.outcomes == {"invalid": 1}
    assert [(d.reason, d.offset) for d in effects.dead_letters] == [("out-of-range", 0)]
    assert "0001-01-01T00:00:00Z is before 1970-01-01T00:00:00Z" in effects.dead_letters[0].detail
    assert partition.progress.stream_time is None and partition.progress.offset == 0
    assert not partition.series


@pytest.mark.parametrize("fast", [True, False])
def test_the_earliest_instant_itself_is_accepted_and_a_moment_before_is_not(fast: bool) -> None:
    earliest = float(T0)
    partition, effects = state(CoreConfig(earliest=earliest), "crossings", "crossing"), Effects()
    messages = [
        (0, crossing_bytes("at", format_utc(earliest)), -1),
        (1, crossing_bytes("before", format_utc(earliest - 1)), -1),
        (2, crossing_bytes("after", format_utc(earliest + H)), -1),
    ]
    if fast:
        partition.process_many(messages, effects)
    else:
        for offset, value, stamp in messages:
            partition.process(offset, value, effects, stamp)
    assert effects.outcomes == {"accepted": 2, "invalid": 1}
    assert [(d.reason, d.offset) for d in effects.dead_letters] == [("out-of-range", 1)]
    assert partition.progress.stream_time == earliest + H


def test_a_statement_issued_before_the_earliest_is_out_of_range_too() -> None:
    partition, effects = state(CoreConfig(earliest=float(T0)), "statements", "statement"), Effects()
    partition.process(0, orjson.dumps(statement("s-old", T0 - 1, "KZ", 5, since="2022-09-01T00:00:00Z")), effects)
    assert [d.reason for d in effects.dead_letters] == ["out-of-range"] and not partition.statements


def test_the_earliest_defaults_to_the_unix_epoch_and_is_read_as_rfc_3339() -> None:
    assert Settings().core().earliest == 0.0
    assert Settings(earliest="2022-09-21T00:00:00+03:00").core().earliest == parse_rfc3339("2022-09-20T21:00:00Z").timestamp()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RFC 3339"):
        Settings(earliest="yesterday")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "spelled"),
    [
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
        ("0099-03-04T05:06:07.25+00:00", "0099-03-04T05:06:07.250000Z"),
        ("0999-12-31T23:00:00-01:00", "1000-01-01T00:00:00Z"),
    ],
)
def test_times_are_written_with_four_digit_years(text: str, spelled: str) -> None:
    moment = parse_rfc3339(text)
    assert format_utc(moment) == format_utc(moment.timestamp()) == spelled
    assert parse_rfc3339(spelled) == moment


@given(st.floats(min_value=-62135596800, max_value=253402300799, allow_nan=False).map(lambda s: round(s, 6)))
@settings(max_examples=300)
def test_seconds_are_formatted_like_the_instant_they_name_however_often_asked(seconds: float) -> None:
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    spelled = format_utc(moment)
    assert format_utc(seconds) == spelled and format_utc(seconds) == spelled  # the second answer comes from the cache
    assert parse_rfc3339(spelled) == moment

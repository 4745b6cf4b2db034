"""The read model: what the web side, the metrics and the console see of a partition's state."""

from __future__ import annotations

import orjson

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.reading import Partial, read
from streams.core.records import SeriesCode
from streams.core.state import PartitionState
from tests.factories import T0, crossing_bytes, registration, statement
from tests.support import H


def test_a_reading_shows_the_partials_keys_and_stream_time_of_what_was_applied() -> None:
    state = PartitionState("crossings", 2, "crossing", CoreConfig())
    values = [crossing_bytes("a", T0, count=2), crossing_bytes("b", T0 + 2 * H, count=3), orjson.dumps(registration("r", T0, "zz-1"))]
    state.process_many([(offset, value, -1) for offset, value in enumerate(values)], Effects())
    (reading,) = read([state])
    assert (reading.topic, reading.partition, reading.offset, reading.stream_time) == ("crossings", 2, 2, T0 + 2 * H)
    assert set(reading.keys()) == {(SeriesCode.BORDER, "upper-lars"), (SeriesCode.ENTRIES, "GE"), (SeriesCode.EXITS, "RU")}
    assert reading.partial(SeriesCode.BORDER, "upper-lars") == Partial({T0: 2, T0 + 2 * H: 3}, 5, T0 + 2 * H)
    assert reading.partial(SeriesCode.BORDER, "vaalimaa") is None
    assert dict(reading.series())[(SeriesCode.ENTRIES, "GE")].total == 5
    assert reading.has_seen("a") and not reading.has_seen("z") and reading.dedup_size == 3  # the registration's id too
    assert reading.record_count == state.record_count >= 3 + 1 + 1  # series, registration, progress
    assert set(reading.registrations) == {"zz-1"} and reading.registered("zz-1") is not None


def test_a_reading_of_a_statement_partition_shows_its_statements_as_published() -> None:
    state = PartitionState("statements", 0, "statement", CoreConfig())
    state.process(0, orjson.dumps(statement("s-1", T0, "KZ", 100)), Effects())
    (reading,) = read([state])
    assert [(s["event_id"], s["country"], s["value"], s["offset"]) for s in reading.statements()] == [("s-1", "KZ", 100, 0)]
    assert reading.stream_time == T0 and not list(reading.keys())

"""The state key layout: every key the state writes parses back, and selects its partition by prefix."""

from __future__ import annotations

import pytest

from streams.core.records import (
    STATE_TAGS,
    SeriesCode,
    StateKey,
    checkpoint_key,
    dedup_key,
    key_prefix,
    parse_series_rest,
    parse_state_key,
    progress_key,
    series_key,
    state_prefix,
    statement_key,
)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (series_key("crossings", 3, SeriesCode.BORDER, "upper-lars"), StateKey("S", "crossings", 3, "b|upper-lars")),
        (statement_key("statements", 0, "s-1|x"), StateKey("T", "statements", 0, "s-1|x")),
        (checkpoint_key("crossings", 11, "zz-1"), StateKey("C", "crossings", 11, "zz-1")),
        (progress_key("departures", 2), StateKey("P", "departures", 2, "progress")),
        (dedup_key("crossings", 7, f"{42:020d}"), StateKey("D", "crossings", 7, f"{42:020d}")),
    ],
)
def test_each_key_parses_back_to_its_parts(key: bytes, expected: StateKey) -> None:
    assert parse_state_key(key) == expected
    assert expected.tag in STATE_TAGS
    assert key_prefix(key) in state_prefix(expected.topic, expected.partition)
    assert key_prefix(key) not in state_prefix(expected.topic, expected.partition + 1)


def test_a_series_key_names_its_code_and_key() -> None:
    rest = parse_state_key(series_key("crossings", 0, SeriesCode.DEPARTURES, "GE")).rest
    assert parse_series_rest(rest) == (SeriesCode.DEPARTURES, "GE")

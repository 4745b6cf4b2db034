"""An event time too far ahead of when the event was sent is dead-lettered and moves nothing (streams/core/stream_time.py)."""

from __future__ import annotations

import orjson

from events.times import format_utc, parse_rfc3339
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from tests.factories import crossing_bytes as crossing
from tests.support import H

SENT = parse_rfc3339("2022-09-21T12:00:00Z").timestamp()
SENT_MS = int(SENT * 1000)
YEAR = 365 * 24 * H


def state_at(now: float) -> PartitionState:
    return PartitionState("crossings", 0, "crossing", CoreConfig(max_future=6 * H), clock=lambda: now)


def test_a_crossing_in_year_9999_is_dead_lettered_and_does_not_become_stream_time() -> None:
    """Regression: it became its partition's stream time; retention then deleted every bucket and every later event was late."""
    state, effects = state_at(SENT), Effects()
    state.process_many([(0, crossing("now", format_utc(SENT)), -1), (1, crossing("far", "9999-12-31T23:59:59Z"), -1)], effects)
    state.process_many([(2, crossing("later", format_utc(SENT + H)), -1)], effects)
    assert effects.outcomes == {"accepted": 2, "invalid": 1}
    assert [(d.reason, d.offset) for d in effects.dead_letters] == [("future", 1)]
    assert "9999-12-31T23:59:59Z" in effects.dead_letters[0].detail
    assert state.progress.stream_time == SENT + H
    assert state.progress.offset == 2


def test_a_replay_judges_an_event_as_the_live_worker_did() -> None:
    """The record's timestamp is the reference, not the clock of whoever reads it: live and a replay a year later agree."""
    fine, ahead = crossing("fine", format_utc(SENT + 5 * H)), crossing("ahead", format_utc(SENT + 7 * H))
    for now in (SENT + 60, SENT + YEAR):  # live, just after it was sent; a replay a year later
        state, effects = state_at(now), Effects()
        state.process_many([(0, fine, SENT_MS), (1, ahead, SENT_MS)], effects)
        assert effects.outcomes == {"accepted": 1, "invalid": 1}, now
        assert [d.reason for d in effects.dead_letters] == ["future"]


def test_a_timestamp_ahead_of_the_clock_gains_nothing() -> None:
    """A producer that stamps its records in the future is capped by the worker's clock."""
    state, effects = state_at(SENT), Effects()
    state.process(0, crossing("forged", format_utc(SENT + 7 * H)), effects, SENT_MS + 100 * H * 1000)
    assert effects.outcomes == {"invalid": 1} and effects.dead_letters[0].reason == "future"


def test_a_future_statement_is_dead_lettered_too() -> None:
    state, effects = PartitionState("statements", 0, "statement", CoreConfig(), clock=lambda: SENT), Effects()
    statement = {"type": "statement", "event_id": "s", "issued_at": "2099-01-01T00:00:00Z", "source": "x", "country": "KZ"}
    state.process(0, orjson.dumps(statement | {"metric": "entries", "value": 5}), effects)
    assert effects.outcomes == {"invalid": 1} and effects.dead_letters[0].reason == "future"
    assert state.progress.stream_time is None and state.statements == {}

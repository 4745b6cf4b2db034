"""Any bytes on any input topic are counted, judged, forwarded or dead-lettered: never raised, never lost, never half-applied."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from tests.factories import CROSSING, DEPARTURE, STATEMENT

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(["", "RU", "GE", "upper-lars", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "2022-09-21T10:00:00Z"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def near(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some fields replaced by arbitrary JSON, removed, or added."""
    fields = [*base, "schema_version", "extra"]
    return st.builds(
        lambda changes, removed: {k: v for k, v in (base | changes).items() if k not in removed},
        st.dictionaries(st.sampled_from(fields), JSON_VALUES, max_size=3),
        st.sets(st.sampled_from(list(base)), max_size=2),
    )


def dumps(value: Any) -> bytes:
    """JSON as any producer may write it: integers of any size, and NaN or Infinity, which JSON does not allow."""
    return json.dumps(value).encode()


MESSAGES = st.one_of(
    st.builds(dumps, near(CROSSING) | near(DEPARTURE) | near(STATEMENT)),
    st.builds(dumps, JSON_VALUES),
    st.binary(max_size=200),
    st.none(),
    st.just(orjson.dumps(CROSSING)),
    st.just(orjson.dumps(DEPARTURE)),
    st.just(orjson.dumps(STATEMENT)),
)
OUTCOMES = {"accepted", "duplicate", "late", "invalid", "forwarded"}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(MESSAGES, min_size=1, max_size=30),
    kind=st.sampled_from([("crossings", "crossing"), ("departures", "departure"), ("statements", "statement")]),
    partitions=st.sampled_from([None, 4]),
    batch=st.integers(1, 10),
)
def test_every_message_gets_exactly_one_outcome_and_bad_ones_a_dead_letter(
    values: list[bytes | None], kind: tuple[str, str], partitions: int | None, batch: int
) -> None:
    topic, event_type = kind
    state = PartitionState(topic, 0, event_type, CoreConfig(partitions=partitions), clock=lambda: 1.9e9)
    one_by_one = PartitionState(topic, 0, event_type, CoreConfig(partitions=partitions), clock=lambda: 1.9e9)
    for start in range(0, len(values), batch):
        chunk = [(offset, value, -1) for offset, value in enumerate(values[start : start + batch], start=start)]
        each = Effects()
        for offset, value, stamp in chunk:  # the per-event path
            one_by_one.process(offset, value, each, stamp)
        effects = Effects()
        state.process_many(chunk, effects)  # the batch path
        assert {k: v for k, v in each.outcomes.items() if v} == effects.outcomes
        assert each.dead_letters == effects.dead_letters
        state.close_windows(effects)
        state.flush()
        assert set(effects.outcomes) <= OUTCOMES
        assert sum(effects.outcomes.values()) == len(chunk)  # each message judged once
        invalid_or_late = effects.outcomes.get("invalid", 0) + effects.outcomes.get("late", 0)
        assert len(effects.dead_letters) == invalid_or_late
        assert {letter.offset for letter in effects.dead_letters} <= {offset for offset, _, _ in chunk}
        for letter in effects.dead_letters:
            assert letter.reason == "late" or letter.reason == "future" or letter.reason.startswith("invalid:")
            assert letter.detail
        assert len(effects.forwards) == effects.outcomes.get("forwarded", 0)
        assert all(home != 0 for _, home in effects.forwards)
    assert state.progress.offset == len(values) - 1  # nothing skipped, nothing stuck
    snapshot = state.snapshot()  # the state is readable and serialisable whatever came in
    orjson.dumps(snapshot)

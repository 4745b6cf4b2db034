"""Registered checkpoints are counted between their two countries only; unregistered ones up to each partition's share of a bound.

Checkpoints registered at run time, with a ``checkpoint`` message on the crossings topic, take effect at their place in the input.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from events.checkpoints import registered
from events.validation import InvalidEvent, validate
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.records import SeriesCode
from streams.core.state import PartitionState
from streams.tools.bench import UPSTREAM_CHECKPOINTS, bench_events
from tests.factories import T0, crossing, registration


def run(state: PartitionState, events: list[dict[str, Any]], first_offset: int = 0, fast: bool = True) -> Effects:
    effects = Effects()
    messages = [(first_offset + i, orjson.dumps(e), -1) for i, e in enumerate(events)]
    if fast:
        state.process_many(messages, effects)
    else:
        for offset, value, timestamp in messages:
            state.process(offset, value, effects, timestamp)
    return effects


def reasons(effects: Effects) -> list[str]:
    return [letter.reason for letter in effects.dead_letters]


@pytest.mark.parametrize("fast", [True, False])
def test_a_registered_checkpoint_between_other_countries_is_dead_lettered_naming_them(fast: bool) -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig())
    effects = run(
        state,
        [
            crossing("a", T0, "upper-lars", "RU", "GE", 5),
            crossing("b", T0, "upper-lars", "GE", "RU", 2),  # either way
            crossing("c", T0, "upper-lars", "RU", "KZ", 7),
        ],
        fast=fast,
    )
    assert reasons(effects) == ["invalid:border"]
    assert "joins GE and RU, not RU and KZ" in effects.dead_letters[0].detail
    assert state.series[(SeriesCode.BORDER, "upper-lars")].total == 7
    assert (SeriesCode.ENTRIES, "KZ") not in state.series


@pytest.mark.parametrize("fast", [True, False])
def test_unregistered_checkpoints_up_to_the_bound_then_too_many_checkpoints(fast: bool) -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig(unregistered_checkpoints=3))
    flood = [crossing(f"f-{i}", T0 + i, f"zz-card-{i}", "RU", "GE") for i in range(50)]
    effects = run(state, flood, fast=fast)
    assert reasons(effects) == ["too-many-checkpoints"] * 47
    assert sorted(key for code, key in state.series if code == SeriesCode.BORDER) == ["zz-card-0", "zz-card-1", "zz-card-2"]
    # a checkpoint already counted stays counted, and a registered one is always counted
    later = run(state, [crossing("g", T0 + 60, "zz-card-1", "RU", "GE"), crossing("h", T0 + 61, "vaalimaa", "RU", "FI")], 100, fast)
    assert not later.dead_letters
    assert state.series[(SeriesCode.BORDER, "zz-card-1")].total == 2 and state.series[(SeriesCode.BORDER, "vaalimaa")].total == 1


def test_the_bound_survives_a_reload_from_the_table() -> None:
    config = CoreConfig(unregistered_checkpoints=2)
    state = PartitionState("crossings", 0, "crossing", config)
    run(state, [crossing("a", T0, "zz-1"), crossing("b", T0, "zz-2")])
    state.close_windows(Effects())
    again = PartitionState("crossings", 0, "crossing", config)
    again.load([(key, value) for key, value in state.flush() if value is not None])
    effects = run(again, [crossing("c", T0 + 1, "zz-3"), crossing("d", T0 + 2, "zz-2")], first_offset=10)
    assert reasons(effects) == ["too-many-checkpoints"]
    assert again.series[(SeriesCode.BORDER, "zz-2")].total == 2


def test_the_shipped_registry_covers_the_simulated_world() -> None:
    from streams.tools.simulation import CHECKPOINTS

    for point in CHECKPOINTS:
        assert registered()[point.border].countries == {"RU", point.to_country}, point.border


@pytest.mark.parametrize("fast", [True, False])
def test_a_checkpoint_registered_at_run_time_is_judged_from_its_place_in_the_input(fast: bool) -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig(unregistered_checkpoints=1))
    effects = run(
        state,
        [
            crossing("a", T0, "zz-1", "RU", "GE"),  # the partition's one unregistered checkpoint
            crossing("b", T0, "zz-2", "RU", "KZ"),  # one more: refused
            registration("r", T0 + 9 * 3600, "zz-2", ("KZ", "RU"), "Zz Two"),
            crossing("c", T0 + 1, "zz-2", "KZ", "RU"),  # now registered: counted, either way
            crossing("d", T0 + 2, "zz-2", "RU", "GE"),  # between other countries
            crossing("e", T0 + 3, "zz-3", "RU", "GE"),  # the bound is still taken by zz-1
        ],
        fast=fast,
    )
    assert reasons(effects) == ["too-many-checkpoints", "invalid:border", "too-many-checkpoints"]
    assert "zz-2 (Zz Two) joins KZ and RU, not RU and GE" in effects.dead_letters[1].detail
    assert state.series[(SeriesCode.BORDER, "zz-2")].total == 1
    assert state.registered("zz-2") is not None and state.registered("zz-2").name == "Zz Two"  # type: ignore[union-attr]
    assert state.progress.stream_time == T0 + 1, "an operator's registration time never moves stream time"


@pytest.mark.parametrize("fast", [True, False])
def test_registering_a_counted_checkpoint_frees_its_unregistered_slot(fast: bool) -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig(unregistered_checkpoints=1))
    effects = run(
        state,
        [
            crossing("a", T0, "zz-1"),
            crossing("b", T0, "zz-2"),
            registration("r", T0, "zz-1", ("RU", "GE")),
            crossing("c", T0, "zz-2"),
            crossing("d", T0, "zz-1", "RU", "KZ"),
        ],
        fast=fast,
    )
    assert reasons(effects) == ["too-many-checkpoints", "invalid:border"]
    assert state.series[(SeriesCode.BORDER, "zz-1")].total == 1 and state.series[(SeriesCode.BORDER, "zz-2")].total == 1


def test_the_later_registration_holds_whatever_order_they_arrive_in() -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig())
    run(state, [registration("new", T0 + 60, "zz-1", ("RU", "KZ"), "New"), registration("old", T0, "zz-1", ("RU", "GE"), "Old")])
    assert state.registered("zz-1") is not None and state.registered("zz-1").name == "New"  # type: ignore[union-attr]
    effects = run(state, [crossing("a", T0, "zz-1", "RU", "KZ")], 10)
    assert not effects.dead_letters
    # a shipped checkpoint is changed by any registration
    run(state, [registration("lars", T0, "upper-lars", ("RU", "GE"), "Verkhny Lars")], 20)
    assert state.registered("upper-lars").name == "Verkhny Lars"  # type: ignore[union-attr]


def test_registrations_past_the_bound_are_refused_but_changes_never() -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig(unregistered_checkpoints=2))
    flood = [registration(f"r-{i}", T0, f"zz-{i}") for i in range(5)]
    effects = run(state, [*flood, registration("again", T0 + 1, "zz-0", ("RU", "KZ")), registration("lars", T0, "upper-lars")])
    assert reasons(effects) == ["too-many-checkpoints"] * 3
    assert "raise the bound" in effects.dead_letters[0].detail
    assert sorted(state.registrations) == ["upper-lars", "zz-0", "zz-1"]
    assert state.registered("zz-0").countries == {"RU", "KZ"}  # type: ignore[union-attr]


def test_registrations_survive_a_reload_and_a_replay_compares_them() -> None:
    config = CoreConfig(unregistered_checkpoints=2)
    state = PartitionState("crossings", 0, "crossing", config)
    run(state, [crossing("a", T0, "zz-1"), registration("r", T0, "zz-2", ("RU", "KZ"), "Two"), registration("s", T0, "zz-1")])
    again = PartitionState("crossings", 0, "crossing", config)
    again.load([(key, value) for key, value in state.flush() if value is not None])
    assert again.snapshot() == state.snapshot() and again.snapshot()["checkpoints"]["zz-2"]["name"] == "Two"
    effects = run(again, [crossing("b", T0, "zz-3"), crossing("c", T0, "zz-2", "RU", "GE"), crossing("d", T0, "zz-2", "KZ", "RU")], 10)
    assert reasons(effects) == ["invalid:border"]
    assert again.series[(SeriesCode.BORDER, "zz-3")].total == 1 and again.series[(SeriesCode.BORDER, "zz-2")].total == 1
    # the same registration again is a duplicate, as any event id
    assert run(again, [registration("r", T0, "zz-2", ("RU", "KZ"), "Two")], 20).outcomes == {"duplicate": 1}


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"countries": ["RU"]}, "countries", "expected two country codes, got 1"),
        ({"countries": ["RU", "RU"]}, "countries", "the same country twice"),
        ({"countries": ["RU", "XX"]}, "countries", "not an ISO 3166-1 alpha-2 country code: 'XX'"),
        ({"countries": "RU,GE"}, "countries", "wrong type: expected a list of two country codes, got str"),
        ({"name": "a\nb"}, "name", "not printable"),
        ({"name": "n" * 129}, "name", "too long: 129 characters, at most 128"),
        ({"border": "Upper Lars"}, "border", "not a lowercase slug"),
        ({"registered_at": "yesterday"}, "registered_at", "bad timestamp"),
    ],
)
def test_a_bad_registration_names_the_field_and_the_reason(change: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        validate(registration("r", T0, "zz-1") | change)
    assert caught.value.field == field and reason in caught.value.reason


def test_a_registration_belongs_on_the_crossings_topic_only() -> None:
    state = PartitionState("departures", 0, "departure", CoreConfig())
    effects = run(state, [registration("r", T0, "zz-1")])
    assert reasons(effects) == ["invalid:type"]


def test_the_bench_crosses_registered_checkpoints_between_their_own_countries() -> None:
    """Else the bench's upstream input would measure the dead-letter path, not counting."""
    shipped = registered()
    for _, value, _ in bench_events(2_000, 1_000, checkpoints=UPSTREAM_CHECKPOINTS):
        event = orjson.loads(value)
        checkpoint = shipped.get(event["border"])
        if checkpoint is not None:
            assert checkpoint.mismatch(event["from_country"], event["to_country"]) is None, event

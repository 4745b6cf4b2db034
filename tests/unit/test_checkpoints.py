"""Registered checkpoints are counted between their two countries only; unregistered ones up to each partition's share of a bound."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from events.checkpoints import registered
from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.state import PartitionState
from tests.factories import T0, crossing


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
    assert state.series[("b", "upper-lars")].total == 7
    assert ("e", "KZ") not in state.series


@pytest.mark.parametrize("fast", [True, False])
def test_unregistered_checkpoints_up_to_the_bound_then_too_many_checkpoints(fast: bool) -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig(unregistered_checkpoints=3))
    flood = [crossing(f"f-{i}", T0 + i, f"zz-card-{i}", "RU", "GE") for i in range(50)]
    effects = run(state, flood, fast=fast)
    assert reasons(effects) == ["too-many-checkpoints"] * 47
    assert sorted(key for code, key in state.series if code == "b") == ["zz-card-0", "zz-card-1", "zz-card-2"]
    # a checkpoint already counted stays counted, and a registered one is always counted
    later = run(state, [crossing("g", T0 + 60, "zz-card-1", "RU", "GE"), crossing("h", T0 + 61, "vaalimaa", "RU", "FI")], 100, fast)
    assert not later.dead_letters
    assert state.series[("b", "zz-card-1")].total == 2 and state.series[("b", "vaalimaa")].total == 1


def test_the_bound_survives_a_reload_from_the_table() -> None:
    config = CoreConfig(unregistered_checkpoints=2)
    state = PartitionState("crossings", 0, "crossing", config)
    run(state, [crossing("a", T0, "zz-1"), crossing("b", T0, "zz-2")])
    state.close_windows(Effects())
    again = PartitionState("crossings", 0, "crossing", config)
    again.load([(key, value) for key, value in state.flush() if value is not None])
    effects = run(again, [crossing("c", T0 + 1, "zz-3"), crossing("d", T0 + 2, "zz-2")], first_offset=10)
    assert reasons(effects) == ["too-many-checkpoints"]
    assert again.series[("b", "zz-2")].total == 2


def test_the_shipped_registry_covers_the_simulated_world() -> None:
    from streams.tools.simulation import CHECKPOINTS

    for point in CHECKPOINTS:
        assert registered()[point.border].countries == {"RU", point.to_country}, point.border

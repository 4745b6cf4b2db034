"""Each partition once, from its current owner: the fence between a cut-off worker's old answer and its successor's."""

from __future__ import annotations

import pytest

from streams.core.ownership import Incomplete, OwnerAnswer, StandbyAnswer, current_owners, serving, standby_lag


def answer(worker: str, generation: int, partitions: set[int], unavailable: str | None = None) -> OwnerAnswer[str]:
    return OwnerAnswer(worker, generation, frozenset(partitions), None if unavailable else worker, unavailable)


def test_one_generation_split_across_workers_is_used_whole() -> None:
    chosen = current_owners([answer("a", 5, {0, 1}), answer("b", 5, {2, 3})], 4)
    assert [a.body for a in chosen] == ["a", "b"]


def test_a_cut_off_worker_s_old_generation_is_not_counted_beside_the_new_owner() -> None:
    """The double count of the issue: a still claims 0 and 1 in generation 5, b owns everything in 6."""
    chosen = current_owners([answer("a", 5, {0, 1}), answer("b", 6, {0, 1, 2, 3})], 4)
    assert [a.body for a in chosen] == ["b"]


def test_whichever_order_the_answers_arrive_in() -> None:
    chosen = current_owners([answer("b", 6, {0, 1, 2, 3}), answer("a", 5, {0, 1})], 4)
    assert [a.body for a in chosen] == ["b"]


def test_a_worker_that_cannot_serve_leaves_its_partitions_missing_and_named() -> None:
    with pytest.raises(Incomplete) as raised:
        current_owners([answer("a", 5, {0, 1}, "out of touch with its consumer group"), answer("b", 5, {2, 3})], 4)
    assert raised.value.missing == [0, 1]
    assert raised.value.reasons == {"a": "out of touch with its consumer group"}
    assert "partitions 0, 1" in str(raised.value) and "out of touch" in str(raised.value)


def test_an_older_generation_never_fills_a_gap_in_the_newest() -> None:
    """b took 0-3 in generation 6 but is recovering: a's generation-5 partials are not a stand-in."""
    with pytest.raises(Incomplete) as raised:
        current_owners([answer("a", 5, {0, 1}), answer("c", 6, {2, 3}), answer("b", 6, {0, 1}, "recovering its state")], 4)
    assert raised.value.missing == [0, 1]
    assert "generation 5" in raised.value.reasons["a"]
    assert raised.value.reasons["b"] == "recovering its state"


def test_a_partition_claimed_twice_in_one_generation_is_refused() -> None:
    with pytest.raises(Incomplete) as raised:
        current_owners([answer("a", 7, {0, 1}), answer("b", 7, {1, 2, 3})], 4)
    assert raised.value.missing == [1]


def test_nobody_serving_names_every_partition() -> None:
    with pytest.raises(Incomplete) as raised:
        current_owners([answer("a", 3, {0, 1, 2, 3}, "rebalancing")], 4)
    assert raised.value.missing == [0, 1, 2, 3]


def test_a_worker_owning_nothing_is_harmless() -> None:
    chosen = current_owners([answer("a", 9, set()), answer("b", 9, {0, 1, 2, 3})], 4)
    assert [a.body for a in chosen] == ["a", "b"]


def with_standbys(base: OwnerAnswer[str], *replicas: tuple[int, int]) -> OwnerAnswer[str]:
    """``base`` also answering for standby replicas of (partition, lag)."""
    standbys = tuple(StandbyAnswer(p, lag, f"{base.worker}-standby-{p}") for p, lag in replicas)
    return OwnerAnswer(base.worker, base.generation, base.partitions, base.body, base.unavailable, standbys)


def test_a_restarting_owner_s_partitions_are_read_once_from_the_least_lagging_standby() -> None:
    answers = [
        answer("a", 5, {0, 1}, "starting"),
        with_standbys(answer("b", 5, {2, 3}), (0, 4), (1, 0)),
        with_standbys(answer("c", 5, {4, 5}), (0, 1), (2, 0)),
    ]
    served = serving(answers, 6)
    assert [a.body for a in served.owners] == ["b", "c"]
    assert {p: (worker, replica.body, replica.lag) for p, (worker, replica) in served.standbys.items()} == {
        0: ("c", "c-standby-0", 1),
        1: ("b", "b-standby-1", 0),
    }
    # a partition its owner answers for is never read from a standby too
    assert 2 not in served.standbys
    # the strict reading still refuses
    with pytest.raises(Incomplete):
        current_owners(answers, 6)


def test_no_standby_of_an_older_generation_or_for_a_partition_claimed_twice() -> None:
    answers = [
        answer("a", 6, {0, 1}, "recovering its state"),
        with_standbys(answer("b", 5, {2, 3}), (0, 0), (1, 0)),  # a cut-off worker's replicas are from the old assignment
        answer("c", 6, {2, 3}),
    ]
    with pytest.raises(Incomplete) as raised:
        serving(answers, 4)
    assert raised.value.missing == [0, 1]
    twice = [answer("a", 6, {0, 1}), with_standbys(answer("b", 6, {1, 2, 3}), (1, 0))]
    with pytest.raises(Incomplete) as raised:
        serving(twice, 4)
    assert raised.value.missing == [1]


C, D = "crossings", "departures"


def test_a_replica_lags_by_the_records_between_its_store_and_the_changelog_s_end() -> None:
    assert standby_lag(41, 42, {C: 1240, D: 300}, {C: 1241, D: 301}) == 0
    assert standby_lag(36, 42, {C: 1240, D: 300}, {C: 1241, D: 301}) == 5


def test_a_replica_behind_what_its_owner_committed_is_not_current_whatever_its_offset_says() -> None:
    """The wrong answer of the rolling restart: a replica that held nothing, its changelog offset at the end."""
    assert standby_lag(41, 42, {C: -1, D: -1}, {C: 1241, D: None}) is None
    assert standby_lag(41, 42, {C: 1239, D: 300}, {C: 1241, D: 301}) is None


def test_an_input_never_committed_asks_nothing_of_the_replica() -> None:
    assert standby_lag(41, 42, {C: 1240}, {C: 1241, D: None, "statements": 0}) == 0


def test_an_unknown_or_impossible_offset_shows_nothing() -> None:
    committed: dict[str, int | None] = {C: 1241}
    assert standby_lag(None, 42, {C: 1240}, committed) is None  # the store has applied nothing yet
    assert standby_lag(41, None, {C: 1240}, committed) is None  # the broker did not say where the changelog ends
    assert standby_lag(42, 42, {C: 1240}, committed) is None  # a store ahead of its changelog is from another life of it
    assert standby_lag(-1, 0, {C: 1240}, committed) is None

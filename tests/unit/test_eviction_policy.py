"""Which group members the embedded-broker workaround evicts (streams/broker_defects.py)."""

from __future__ import annotations

from streams.broker_defects import EvictionPolicy


def test_a_member_that_answered_and_went_silent_is_evicted_after_a_session_timeout() -> None:
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"a": True, "b": True}, now=0) == []
    assert policy.decide({"a": True, "b": False}, now=5) == []
    assert policy.decide({"a": True, "b": False}, now=14) == []
    assert policy.decide({"a": True, "b": False}, now=15) == ["b"]
    assert policy.decide({"a": True}, now=16) == []  # gone from the group: forgotten


def test_a_member_that_never_answered_may_still_be_recovering_and_gets_the_join_grace() -> None:
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"new": False}, now=0) == []
    assert policy.decide({"new": False}, now=60) == []  # a slow recovery is not death
    assert policy.decide({"new": True}, now=90) == []  # serving now
    assert policy.decide({"new": False}, now=95) == []
    assert policy.decide({"new": False}, now=105) == ["new"]  # answered once, then silent for 10 s


def test_a_member_that_never_answers_is_evicted_after_the_join_grace() -> None:
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"ghost": False}, now=0) == []
    assert policy.decide({"ghost": False}, now=299) == []
    assert policy.decide({"ghost": False}, now=300) == ["ghost"]


def test_answering_again_resets_the_silence() -> None:
    policy = EvictionPolicy(session_timeout=10)
    policy.decide({"a": True}, now=0)
    policy.decide({"a": False}, now=1)
    policy.decide({"a": True}, now=9)
    assert policy.decide({"a": False}, now=12) == []
    assert policy.decide({"a": False}, now=22) == ["a"]

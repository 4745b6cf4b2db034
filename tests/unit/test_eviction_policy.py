"""Which group members the embedded-broker workaround evicts (streams/defects.py)."""

from __future__ import annotations

from streams.defects import Answer, EvictionPolicy

OK, REFUSED, SILENT = Answer.ANSWERED, Answer.REFUSED, Answer.SILENT


def test_a_member_that_answered_and_went_silent_is_evicted_after_a_session_timeout() -> None:
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"a": OK, "b": OK}, now=0) == []
    assert policy.decide({"a": OK, "b": SILENT}, now=5) == []
    assert policy.decide({"a": OK, "b": SILENT}, now=14) == []
    assert policy.decide({"a": OK, "b": SILENT}, now=15) == ["b"]
    assert policy.decide({"a": OK}, now=16) == []  # gone from the group: forgotten


def test_a_member_silent_since_it_joined_may_still_be_loading_and_gets_the_join_grace() -> None:
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"new": SILENT}, now=0) == []
    assert policy.decide({"new": SILENT}, now=60) == []  # a busy event loop is not death
    assert policy.decide({"new": OK}, now=90) == []  # serving now
    assert policy.decide({"new": SILENT}, now=95) == []
    assert policy.decide({"new": SILENT}, now=105) == ["new"]  # answered once, then silent for 10 s


def test_a_member_that_is_always_silent_is_evicted_after_the_join_grace() -> None:
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"ghost": SILENT}, now=0) == []
    assert policy.decide({"ghost": SILENT}, now=299) == []
    assert policy.decide({"ghost": SILENT}, now=300) == ["ghost"]


def test_a_member_whose_address_refuses_connections_is_evicted_after_a_session_timeout_even_if_never_seen_answering() -> None:
    """Regression: a peer that died before any sweep saw it answer waited out the five-minute join grace."""
    policy = EvictionPolicy(session_timeout=10, join_grace=300)
    assert policy.decide({"a": OK, "died-young": REFUSED}, now=0) == []
    assert policy.decide({"a": OK, "died-young": REFUSED}, now=9) == []
    assert policy.decide({"a": OK, "died-young": REFUSED}, now=10) == ["died-young"]


def test_a_refusal_between_answers_is_forgiven() -> None:
    policy = EvictionPolicy(session_timeout=10)
    assert policy.decide({"a": REFUSED}, now=0) == []  # restarting under the same member id
    assert policy.decide({"a": OK}, now=5) == []
    assert policy.decide({"a": REFUSED}, now=12) == []
    assert policy.decide({"a": REFUSED}, now=22) == ["a"]


def test_answering_again_resets_the_silence() -> None:
    policy = EvictionPolicy(session_timeout=10)
    policy.decide({"a": OK}, now=0)
    policy.decide({"a": SILENT}, now=1)
    policy.decide({"a": OK}, now=9)
    assert policy.decide({"a": SILENT}, now=12) == []
    assert policy.decide({"a": SILENT}, now=22) == ["a"]

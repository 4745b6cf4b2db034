"""``/internal/snapshot`` parameters, parsed strictly (streams/web/parameters.py: snapshot_request)."""

from __future__ import annotations

import pytest

from streams.web.parameters import MAX_SNAPSHOT_OFFSETS, BadParameter, snapshot_request


def test_offsets_and_wait_are_read() -> None:
    assert snapshot_request(["t.crossings|0|41", "t.departures|3|0"], "2.5") == ({"t.crossings|0": 41, "t.departures|3": 0}, 2.5)
    assert snapshot_request([], None) == ({}, 30.0)


@pytest.mark.parametrize("wait", ["nan", "NaN", "inf", "-inf", "-1", "301", "1e400", "soon", ""])
def test_a_wait_that_is_not_finite_or_out_of_range_is_refused(wait: str) -> None:
    """Regression: min(nan, 300) is nan, and a NaN timer in asyncio's heap made every later timer fire late."""
    with pytest.raises(BadParameter) as refused:
        snapshot_request([], wait)
    assert refused.value.name == "wait"


@pytest.mark.parametrize(
    "at", ["t|0|00", "t|0|007", "t|00|1", "t|0|-1", "t|0|+1", "t|0| 1", "t|0|1.0", "t|0|", "0|1", "|0|1", "t|x|1", "t|0|1e3", "t|0|٣"]
)
def test_offsets_have_one_spelling_each(at: str) -> None:
    """Regression: at= took 0, 00, 000... so one caller could add thousands of waits that all looked different."""
    with pytest.raises(BadParameter) as refused:
        snapshot_request([at], None)
    assert refused.value.name == "at"


def test_a_request_names_a_bounded_number_of_partitions() -> None:
    many = [f"t|{p}|0" for p in range(MAX_SNAPSHOT_OFFSETS + 1)]
    with pytest.raises(BadParameter, match="at most"):
        snapshot_request(many, None)
    assert len(snapshot_request(many[:-1], None)[0]) == MAX_SNAPSHOT_OFFSETS

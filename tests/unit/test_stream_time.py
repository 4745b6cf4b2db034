"""Stream time and lateness, the rules every partition's state is judged by."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.core.stream_time import advanced, closed_through, future_limit, is_late, retention_cutoff, too_far_ahead
from tests.factories import T0
from tests.support import H

GRACE = 6 * H


def test_nothing_is_late_before_the_first_event_and_exactly_the_grace_is_on_time() -> None:
    assert not is_late(0.0, None, GRACE)
    assert not is_late(T0 - GRACE, T0, GRACE)
    assert is_late(T0 - GRACE - 0.001, T0, GRACE)


@given(st.lists(st.floats(min_value=0, max_value=1e10, allow_nan=False), min_size=1))
def test_stream_time_is_the_newest_event_time_whatever_the_order(times: list[float]) -> None:
    stream_time = None
    for t in times:
        stream_time = advanced(stream_time, t)
    assert stream_time == max(times)


def test_windows_close_a_grace_behind_stream_time() -> None:
    assert closed_through(T0 + 10 * H, GRACE) == T0 + 4 * H


def test_retention_is_cut_at_a_bucket_boundary() -> None:
    assert retention_cutoff(T0 + 30 * 60, 24 * H, H) == T0 - 24 * H
    assert retention_cutoff(T0 + 30 * 60, 24 * H, 15 * 60) == T0 - 24 * H + 30 * 60


def test_the_future_is_measured_from_the_record_timestamp_capped_by_the_clock() -> None:
    now = T0 + 48 * H
    assert future_limit(T0 * 1000, now, GRACE) == T0 + GRACE  # a replay judges as the live worker did
    assert future_limit((now + 100 * H) * 1000, now, GRACE) == now + GRACE  # stamped ahead of the clock gains nothing
    assert future_limit(-1, now, GRACE) == now + GRACE  # no timestamp: the clock


def test_too_far_ahead_names_the_field_and_when_it_was_sent() -> None:
    error = too_far_ahead("occurred_at", T0 + 7 * H, T0 + GRACE, GRACE)
    assert error.field == "occurred_at"
    assert "2022-09-21T07:00:00Z, when it was sent" in error.reason

"""A counts or net-inflow query's parameters (streams/web/parameters.py) and the windows they select (streams/core/queries.py)."""

from __future__ import annotations

import pytest

from events.times import format_utc
from streams.core.config import CoreConfig
from streams.core.queries import WindowQuery, net_inflow_windows, windows_of
from streams.core.reading import Partial
from streams.web.parameters import BadParameter, window_query
from tests.factories import T0
from tests.support import H

CONFIG = CoreConfig()


def test_no_window_named_is_the_bucket_and_times_are_rfc3339() -> None:
    query = window_query(CONFIG, None, format_utc(T0), "")
    assert query == WindowQuery(CONFIG.bucket, float(T0), None)
    assert window_query(CONFIG, "24h", None, None).spec == CONFIG.rolling


@pytest.mark.parametrize(
    ("window", "start", "end", "parameter"),
    [("7d", None, None, "window"), (None, "yesterday", None, "start"), (None, None, "2022-09-21T00:00:00", "end")],
)
def test_a_bad_parameter_is_named(window: str | None, start: str | None, end: str | None, parameter: str) -> None:
    with pytest.raises(BadParameter) as refused:
        window_query(CONFIG, window, start, end)
    assert refused.value.name == parameter


def test_the_windows_asked_for_are_those_starting_in_start_to_end() -> None:
    partial = Partial({T0: 2, T0 + H: 3, T0 + 2 * H: 5}, 10, T0 + 2 * H)
    query = WindowQuery(CONFIG.bucket, T0 + H, T0 + 2 * H)
    assert windows_of(partial, query, CONFIG) == [{"start": format_utc(T0 + H), "end": format_utc(T0 + 2 * H), "count": 3}]
    (everything,) = windows_of(partial, WindowQuery(CONFIG.window("all")), CONFIG)
    assert everything["count"] == 10 and everything["end"] == format_utc(T0 + 3 * H)


def test_net_inflow_is_entries_minus_departures_per_window() -> None:
    entries, departures = Partial({T0: 5}, 5, T0), Partial({T0: 2, T0 + H: 1}, 3, T0 + H)
    hourly = net_inflow_windows(entries, departures, WindowQuery(CONFIG.bucket), CONFIG)
    assert [(w["entries"], w["departures"], w["net"]) for w in hourly] == [(5, 2, 3), (0, 1, -1)]
    (total,) = net_inflow_windows(entries, departures, WindowQuery(CONFIG.window("all")), CONFIG)
    assert (total["net"], total["end"]) == (2, format_utc(T0 + 2 * H))

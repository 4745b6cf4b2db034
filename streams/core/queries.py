"""Answers to the HTTP queries, pure: from merged partial series to JSON shapes.

Their parameters are parsed in ``streams/web/parameters.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from events.times import format_utc, parse_rfc3339
from streams.core.config import CoreConfig
from streams.core.reading import Partial
from streams.core.records import SeriesCode
from streams.core.windows import WindowSpec, bucket_start, window_count, window_counts


@dataclass(frozen=True, slots=True)
class WindowQuery:
    """Which windows a counts or net-inflow query asks for: a window family, and the window starts in ``[start, end)``."""

    spec: WindowSpec
    start: float | None = None
    end: float | None = None

    def wants(self, window_start: float) -> bool:
        return (self.start is None or window_start >= self.start) and (self.end is None or window_start < self.end)


def windows_of(partial: Partial, query: WindowQuery, config: CoreConfig) -> list[dict[str, Any]]:
    """Non-empty windows of a series (summed over its partitions) that ``query`` asks for."""
    spec = query.spec
    if spec.cumulative:
        rows = [(*_cumulative_span(partial.stream_time, config), partial.total)] if partial.total else []
    else:
        rows = [(s, s + spec.size, c) for s, c in sorted(window_counts(partial.buckets, spec, config.bucket_seconds).items())]
    return [{"start": format_utc(s), "end": format_utc(e), "count": c} for s, e, c in rows if c and query.wants(s)]


def _cumulative_span(stream_time: float | None, config: CoreConfig) -> tuple[float, float]:
    """The window ``all``: from BORDERFLOW_SINCE (or the epoch) to the end of stream time's bucket."""
    first = config.since if config.since is not None else 0.0
    return first, bucket_start(stream_time if stream_time is not None else first, config.bucket_seconds) + config.bucket_seconds


def net_inflow_windows(entries: Partial, departures: Partial, query: WindowQuery, config: CoreConfig) -> list[dict[str, Any]]:
    """A country's entries, departures and their difference in each window ``query`` asks for where either is non-zero."""
    spec = query.spec
    if spec.cumulative:
        times = [t for t in (entries.stream_time, departures.stream_time) if t is not None]
        first, last = _cumulative_span(max(times) if times else None, config)
        rows = {first: (last, entries.total, departures.total)} if entries.total or departures.total else {}
    else:
        e_counts = window_counts(entries.buckets, spec, config.bucket_seconds)
        d_counts = window_counts(departures.buckets, spec, config.bucket_seconds)
        rows = {s: (s + spec.size, e_counts.get(s, 0), d_counts.get(s, 0)) for s in e_counts.keys() | d_counts.keys()}
    return [
        {"start": format_utc(s), "end": format_utc(e), "entries": n_in, "departures": n_out, "net": n_in - n_out}
        for s, (e, n_in, n_out) in sorted(rows.items())
        if (n_in or n_out) and query.wants(s)
    ]


#: which series a reconcilable statement metric is observed on
OBSERVED_SERIES = {"entries": SeriesCode.ENTRIES, "exits": SeriesCode.EXITS, "departures": SeriesCode.DEPARTURES}


def observed_series(statements: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The (series_code, country) series that reconciling these statements needs."""
    return sorted({(OBSERVED_SERIES[s["metric"]], s["country"]) for s in statements if s["metric"] in OBSERVED_SERIES})


def reconcile_all(statements: Iterable[Mapping[str, Any]], buckets_for: Callable[[str, str], Mapping[int, int]]) -> list[dict[str, Any]]:
    """Each statement, in publication order, with its observed figure and ratio."""
    out = []
    for item in sorted(statements, key=lambda s: (s["issued_at"], s["event_id"])):
        series_code = OBSERVED_SERIES.get(item["metric"])
        out.append(reconcile(item, None if series_code is None else buckets_for(series_code, item["country"])))
    return out


def reconcile(statement: Mapping[str, Any], buckets: Mapping[int, int] | None) -> dict[str, Any]:
    """The statement plus ``observed`` over ``[since, issued_at)`` and ``ratio``.

    The period is resolved to base buckets: buckets whose start lies in it.
    """
    out = {k: v for k, v in statement.items() if k not in ("offset", "partition")}
    if buckets is None or "since" not in statement:
        out["observed"] = None
        out["ratio"] = None
        return out
    since = parse_rfc3339(statement["since"]).timestamp()
    issued = parse_rfc3339(statement["issued_at"]).timestamp()
    observed = window_count(buckets, int(since), int(issued))
    out["observed"] = observed
    out["ratio"] = (statement["value"] / observed) if observed else None
    return out


#: statement gauges (country, metric, source) one worker shows at most: the most recently issued
MAX_STATEMENT_GAUGES: Final = 200


def gauged_statements(reconciled: Iterable[Mapping[str, Any]], limit: int = MAX_STATEMENT_GAUGES) -> list[StatementView]:
    """The gauges of reconciled statements (in publication order): the latest per label set, at most ``limit`` of them.

    One series per (country, metric, source), whatever the number of
    statements: a source that publishes daily updates its gauge, and a feed
    that invents sources cannot grow the series past ``limit``.
    """
    latest: dict[tuple[str, str, str], Mapping[str, Any]] = {}
    for item in reconciled:
        labels = (item["country"], item["metric"], item["source"])
        latest.pop(labels, None)  # re-inserted last: the dict stays in publication order of the latest
        latest[labels] = item
    return [StatementView(item) for item in list(latest.values())[-limit:]]


class StatementView:
    """A statement's labels and figures, for the gauges."""

    __slots__ = ("country", "metric", "observed", "ratio", "source", "value")

    def __init__(self, item: Mapping[str, Any]) -> None:
        self.country: str = item["country"]
        self.metric: str = item["metric"]
        self.source: str = item["source"]
        self.value: float = item["value"]
        self.observed: int | None = item.get("observed")
        self.ratio: float | None = item.get("ratio")

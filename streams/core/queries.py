"""Answers to the HTTP queries, pure: from merged partial series to JSON shapes."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import orjson

from events.times import format_utc, parse_rfc3339
from streams.core.config import CoreConfig
from streams.core.records import SeriesCode
from streams.core.windows import WindowSpec, bucket_start, window_count, window_counts


class BadParameter(ValueError):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


#: longest a caller may wait for a snapshot at a future offset
MAX_SNAPSHOT_WAIT = 300.0
#: snapshot requests one call may make (one per input partition is all a replay asks)
MAX_SNAPSHOT_OFFSETS = 256
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]{0,18}")


def snapshot_request(at: Iterable[str], wait: str | None, default_wait: float = 30.0) -> tuple[dict[str, int], float]:
    """``at=topic|partition|offset`` values and ``wait=seconds``, parsed strictly.

    Numbers are plain decimals (no ``00`` beside ``0``, no signs, no ``nan``):
    one spelling each, so a caller cannot make many requests look different.
    """
    wanted: dict[str, int] = {}
    for item in at:
        topic, _, offset = item.rpartition("|")
        name, _, partition = topic.rpartition("|")
        if not name or not _CANONICAL_INT.fullmatch(partition) or not _CANONICAL_INT.fullmatch(offset):
            raise BadParameter("at", "expected topic|partition|offset with non-negative decimal partition and offset")
        wanted[topic] = int(offset)
        if len(wanted) > MAX_SNAPSHOT_OFFSETS:
            raise BadParameter("at", f"at most {MAX_SNAPSHOT_OFFSETS} partitions per request")
    seconds = default_wait
    if wait is not None:
        try:
            seconds = float(wait)
        except ValueError:
            raise BadParameter("wait", "expected seconds") from None
        if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SNAPSHOT_WAIT:
            raise BadParameter("wait", f"expected a finite number of seconds from 0 to {MAX_SNAPSHOT_WAIT:.0f}")
    return wanted, seconds


#: event ids one ``/internal/seen`` call may ask about (an ingest body of the largest size holds fewer)
MAX_SEEN_IDS = 200_000


def seen_request(body: bytes) -> dict[str, list[str]]:
    """The ``{topic: [event_id, ...]}`` body of ``POST /internal/seen``, checked before it is used."""
    try:
        wanted = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadParameter("$", "expected a JSON object of topic -> list of event ids") from None
    if not isinstance(wanted, dict):
        raise BadParameter("$", "expected a JSON object of topic -> list of event ids")
    total = 0
    for topic, ids in wanted.items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BadParameter(topic[:100], "expected a list of event ids (strings)")
        total += len(ids)
        if total > MAX_SEEN_IDS:
            raise BadParameter("$", f"at most {MAX_SEEN_IDS} event ids per request")
    return wanted


def windows_of(
    buckets: Mapping[int, int],
    total: int,
    stream_time: float | None,
    spec: WindowSpec,
    config: CoreConfig,
    start: float | None,
    end: float | None,
) -> list[dict[str, Any]]:
    """Non-empty windows of one family, filtered to starts in ``[start, end)``."""
    if spec.cumulative:
        rows = [(*_cumulative_span(stream_time, config), total)] if total else []
    else:
        rows = [(s, s + spec.size, c) for s, c in sorted(window_counts(buckets, spec, config.bucket_seconds).items())]
    return [
        {"start": format_utc(s), "end": format_utc(e), "count": c}
        for s, e, c in rows
        if c and (start is None or s >= start) and (end is None or s < end)
    ]


def _cumulative_span(stream_time: float | None, config: CoreConfig) -> tuple[float, float]:
    """The window ``all``: from BORDERFLOW_SINCE (or the epoch) to the end of stream time's bucket."""
    first = config.since if config.since is not None else 0.0
    return first, bucket_start(stream_time if stream_time is not None else first, config.bucket_seconds) + config.bucket_seconds


def net_inflow_windows(
    entries: Mapping[int, int],
    departures: Mapping[int, int],
    totals: tuple[int, int],
    stream_time: float | None,
    spec: WindowSpec,
    config: CoreConfig,
    start: float | None,
    end: float | None,
) -> list[dict[str, Any]]:
    if spec.cumulative:
        first, last = _cumulative_span(stream_time, config)
        rows = {first: (last, *totals)} if any(totals) else {}
    else:
        e_counts = window_counts(entries, spec, config.bucket_seconds)
        d_counts = window_counts(departures, spec, config.bucket_seconds)
        rows = {s: (s + spec.size, e_counts.get(s, 0), d_counts.get(s, 0)) for s in e_counts.keys() | d_counts.keys()}
    return [
        {"start": format_utc(s), "end": format_utc(e), "entries": n_in, "departures": n_out, "net": n_in - n_out}
        for s, (e, n_in, n_out) in sorted(rows.items())
        if (n_in or n_out) and (start is None or s >= start) and (end is None or s < end)
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


def window_spec(config: CoreConfig, name: str | None) -> WindowSpec:
    name = name or config.bucket.name
    try:
        return config.window(name)
    except KeyError:
        raise BadParameter("window", f"unknown window {name!r}: expected one of {[w.name for w in config.windows]}") from None


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

"""Events for tests, built in one place: valid examples of each type, and builders for many of them."""

from __future__ import annotations

from typing import Any

import orjson

from events.times import format_utc

CROSSING: dict[str, Any] = {
    "type": "crossing",
    "event_id": "c-1",
    "occurred_at": "2022-09-21T10:00:00+03:00",
    "border": "upper-lars",
    "from_country": "RU",
    "to_country": "GE",
    "count": 12,
    "mode": "car",
}
DEPARTURE: dict[str, Any] = {
    "type": "departure",
    "event_id": "d-1",
    "occurred_at": "2022-09-22T10:00:00+06:00",
    "country": "KZ",
    "destination": "UZ",
    "count": 40,
}
STATEMENT: dict[str, Any] = {
    "type": "statement",
    "event_id": "s-1",
    "issued_at": "2022-09-27T12:00:00+06:00",
    "source": "MVD",
    "country": "KZ",
    "metric": "entries",
    "value": 98000,
    "since": "2022-09-21T00:00:00+06:00",
}


def crossing(event_id: str, at: float | str, border: str = "upper-lars", frm: str = "RU", to: str = "GE", count: int = 1) -> dict[str, Any]:
    """A crossing at ``at`` (Unix seconds, or RFC 3339 text kept as given)."""
    return {
        "type": "crossing",
        "event_id": event_id,
        "occurred_at": at if isinstance(at, str) else format_utc(at),
        "border": border,
        "from_country": frm,
        "to_country": to,
        "count": count,
    }


def departure(event_id: str, at: float | str, country: str = "KZ", destination: str = "UZ", count: int = 1) -> dict[str, Any]:
    return {
        "type": "departure",
        "event_id": event_id,
        "occurred_at": at if isinstance(at, str) else format_utc(at),
        "country": country,
        "destination": destination,
        "count": count,
    }


def crossing_bytes(event_id: str, at: float | str, border: str = "upper-lars", count: int = 1) -> bytes:
    return orjson.dumps(crossing(event_id, at, border, count=count))

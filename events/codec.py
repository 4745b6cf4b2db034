"""Bytes <-> events. The only place that knows the wire format (JSON via orjson)."""

from __future__ import annotations

from typing import Any, Final

import orjson

from events.model import Crossing, Departure, Event, Registration, Statement
from events.times import format_utc
from events.validation import InvalidEvent, read_json, validate

MAX_EVENT_BYTES: Final = 64 * 1024


def decode(data: bytes | None, *, max_bytes: int = MAX_EVENT_BYTES) -> Event:
    """Decode and validate one message; raise :class:`InvalidEvent` naming the problem."""
    if data is None:
        raise InvalidEvent("$", "empty message (tombstone)")
    if len(data) > max_bytes:
        raise InvalidEvent("$", f"oversize: {len(data)} bytes, at most {max_bytes}")
    event = read_json(data)
    if event is not None:
        return event
    try:  # unknown fields, an older schema version, or refused: the verdict on the whole JSON value, and the reason
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        reason = "invalid UTF-8" if "utf-8" in str(exc).lower() else "invalid JSON"
        raise InvalidEvent("$", f"{reason}: {exc}") from None
    return validate(obj)


def to_json(event: Event) -> dict[str, Any]:
    """The canonical JSON object of an event (times in UTC, optional fields omitted)."""
    out: dict[str, Any] = {"type": event.type, "event_id": event.event_id}
    if isinstance(event, Crossing):
        out |= {
            "occurred_at": format_utc(event.occurred_at),
            "border": event.border,
            "from_country": event.from_country,
            "to_country": event.to_country,
            "count": event.count,
            "mode": event.mode,
            "source": event.source,
        }
    elif isinstance(event, Departure):
        out |= {
            "occurred_at": format_utc(event.occurred_at),
            "country": event.country,
            "destination": event.destination,
            "count": event.count,
            "border": event.border,
            "source": event.source,
        }
    elif isinstance(event, Registration):
        out |= {
            "registered_at": format_utc(event.registered_at),
            "border": event.border,
            "countries": sorted(event.countries),
            "name": event.name,
            "source": event.source,
        }
    else:
        assert isinstance(event, Statement)
        out |= {
            "issued_at": format_utc(event.issued_at),
            "source": event.source,
            "country": event.country,
            "metric": event.metric,
            "value": event.value,
            "since": None if event.since is None else format_utc(event.since),
            "border": event.border,
            "url": event.url,
            "quote": event.quote,
        }
    return {k: v for k, v in out.items() if v is not None}


def encode(event: Event) -> bytes:
    return orjson.dumps(to_json(event))

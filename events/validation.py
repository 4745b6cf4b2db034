"""Validation: JSON in, a typed event out, or an error naming the field.

Pure functions, shared by the stream agents, ``POST /events``, ``publish``,
replay and verify. The schema is the records of :mod:`events.model`: they
alone decide what is accepted. A message they refuse is read again field by
field (:func:`check_field_by_field`) only to name the field and the reason in
the contract's words; tests keep the two in agreement.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from events.model import (
    COUNTRIES,
    MAX_COUNT,
    MAX_EVENT_ID,
    MAX_NAME,
    MAX_SLUG,
    MAX_TEXT,
    MAX_VALUE,
    MESSAGE_TYPES,
    METRICS,
    MODES,
    SCHEMA_VERSION,
    SLUG_PATTERN,
    Crossing,
    Departure,
    Event,
    Registration,
    Statement,
)
from events.times import parse_rfc3339

__all__ = ["COUNTRIES", "MAX_COUNT", "MAX_NAME", "MAX_TEXT", "InvalidEvent", "check_field_by_field", "read_json", "validate"]

_SLUG = re.compile(SLUG_PATTERN)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
#: ``UPCASTERS[n]`` turns a version-n object into a version-(n+1) object.
UPCASTERS: dict[int, Upcaster] = {}


class InvalidEvent(ValueError):
    """An event that cannot be accepted; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    @property
    def code(self) -> str:
        """A short machine-readable reason (the first words of ``reason``)."""
        return self.reason.split(":")[0]


def _required(obj: Mapping[str, Any], field: str) -> Any:
    if field not in obj or obj[field] is None:
        raise InvalidEvent(field, "missing")
    return obj[field]


def _text(obj: Mapping[str, Any], field: str, *, optional: bool = False) -> str | None:
    if optional and obj.get(field) is None:
        return None
    value = _required(obj, field)
    if not isinstance(value, str):
        raise InvalidEvent(field, f"wrong type: expected string, got {type(value).__name__}")
    if not value:
        raise InvalidEvent(field, "empty")
    if len(value) > MAX_TEXT:
        raise InvalidEvent(field, f"too long: {len(value)} characters, at most {MAX_TEXT}")
    return value


def _event_id(obj: Mapping[str, Any]) -> str:
    value = _text(obj, "event_id")
    assert value is not None
    if len(value) > MAX_EVENT_ID:
        raise InvalidEvent("event_id", f"too long: {len(value)} characters, at most {MAX_EVENT_ID}")
    if not value.isprintable():
        raise InvalidEvent("event_id", "not printable: control characters are not allowed")
    return value


def _time(obj: Mapping[str, Any], field: str, *, optional: bool = False) -> float | None:
    text = _text(obj, field, optional=optional)
    if text is None:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError as exc:
        raise InvalidEvent(field, f"bad timestamp: {text!r} is {exc}") from None


def _country(obj: Mapping[str, Any], field: str) -> str:
    value = _text(obj, field)
    assert value is not None
    if value not in COUNTRIES:
        raise InvalidEvent(field, f"not an ISO 3166-1 alpha-2 country code: {value[:16]!r}")
    return value


def _slug(obj: Mapping[str, Any], field: str, *, optional: bool = False) -> str | None:
    value = _text(obj, field, optional=optional)
    if value is None:
        return None
    if len(value) > MAX_SLUG or not _SLUG.match(value):
        raise InvalidEvent(field, f"not a lowercase slug like 'upper-lars': {value[:32]!r}")
    return value


def _count(obj: Mapping[str, Any]) -> int:
    value = _required(obj, "count")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12.0 is an integer to JSON Schema too
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("count", f"wrong type: expected integer, got {type(value).__name__}")
    if value < 1:
        raise InvalidEvent("count", f"out of range: {value} < 1")
    if value > MAX_COUNT:
        raise InvalidEvent("count", f"out of range: {value} > {MAX_COUNT}")
    return value


def _choice(obj: Mapping[str, Any], field: str, choices: frozenset[str], *, optional: bool) -> str | None:
    value = _text(obj, field, optional=optional)
    if value is not None and value not in choices:
        raise InvalidEvent(field, f"unknown value {value[:32]!r}: expected one of {sorted(choices)}")
    return value


def _number(obj: Mapping[str, Any], field: str) -> int | float:
    value = _required(obj, field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(field, f"wrong type: expected number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidEvent(field, "out of range: not a finite number")
    if value < 0:
        raise InvalidEvent(field, f"out of range: {value} < 0")
    if abs(value) > MAX_VALUE:
        raise InvalidEvent(field, f"out of range: {value} > 1e15")
    return value


def _upcast(obj: dict[str, Any]) -> dict[str, Any]:
    version = obj.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidEvent("schema_version", f"wrong type or value: {version!r}")
    if version > SCHEMA_VERSION:
        raise InvalidEvent(
            "schema_version",
            f"unsupported: version {version} is newer than this worker understands (at most {SCHEMA_VERSION})",
        )
    while version < SCHEMA_VERSION:
        obj = UPCASTERS[version](obj)
        version += 1
    return obj


def _crossing(obj: Mapping[str, Any]) -> Crossing:
    occurred_at = _time(obj, "occurred_at")
    assert occurred_at is not None
    border = _slug(obj, "border")
    assert border is not None
    from_country = _country(obj, "from_country")
    to_country = _country(obj, "to_country")
    if from_country == to_country:
        raise InvalidEvent("to_country", "same as from_country")
    return Crossing(
        event_id=_event_id(obj),
        occurred_at=occurred_at,
        border=border,
        from_country=from_country,
        to_country=to_country,
        count=_count(obj),
        mode=_choice(obj, "mode", MODES, optional=True),
        source=_text(obj, "source", optional=True),
    )


def _departure(obj: Mapping[str, Any]) -> Departure:
    occurred_at = _time(obj, "occurred_at")
    assert occurred_at is not None
    country = _country(obj, "country")
    destination = _country(obj, "destination")
    if country == destination:
        raise InvalidEvent("destination", "same as country")
    return Departure(
        event_id=_event_id(obj),
        occurred_at=occurred_at,
        country=country,
        destination=destination,
        count=_count(obj),
        border=_slug(obj, "border", optional=True),
        source=_text(obj, "source", optional=True),
    )


def _statement(obj: Mapping[str, Any]) -> Statement:
    issued_at = _time(obj, "issued_at")
    assert issued_at is not None
    source = _text(obj, "source")
    assert source is not None
    metric = _choice(obj, "metric", METRICS, optional=False)
    assert metric is not None
    since = _time(obj, "since", optional=True)
    if since is not None and since > issued_at:
        raise InvalidEvent("since", "after issued_at")
    return Statement(
        event_id=_event_id(obj),
        issued_at=issued_at,
        source=source,
        country=_country(obj, "country"),
        metric=metric,
        value=_number(obj, "value"),
        since=since,
        border=_slug(obj, "border", optional=True),
        url=_text(obj, "url", optional=True),
        quote=_text(obj, "quote", optional=True),
    )


def _countries(obj: Mapping[str, Any], field: str) -> frozenset[str]:
    value = _required(obj, field)
    if not isinstance(value, list):
        raise InvalidEvent(field, f"wrong type: expected a list of two country codes, got {type(value).__name__}")
    if len(value) != 2:
        raise InvalidEvent(field, f"expected two country codes, got {len(value)}")
    for code in value:
        if not isinstance(code, str) or code not in COUNTRIES:
            raise InvalidEvent(field, f"not an ISO 3166-1 alpha-2 country code: {str(code)[:16]!r}")
    if value[0] == value[1]:
        raise InvalidEvent(field, "the same country twice")
    return frozenset(value)


def _name(obj: Mapping[str, Any], field: str) -> str:
    value = _text(obj, field)
    assert value is not None
    if len(value) > MAX_NAME:
        raise InvalidEvent(field, f"too long: {len(value)} characters, at most {MAX_NAME}")
    if not value.isprintable():
        raise InvalidEvent(field, "not printable: control characters are not allowed")
    return value


def _registration(obj: Mapping[str, Any]) -> Registration:
    registered_at = _time(obj, "registered_at")
    assert registered_at is not None
    border = _slug(obj, "border")
    assert border is not None
    return Registration(
        event_id=_event_id(obj),
        registered_at=registered_at,
        border=border,
        countries=_countries(obj, "countries"),
        name=_name(obj, "name"),
        source=_text(obj, "source", optional=True),
    )


_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], Event]]] = {
    "crossing": _crossing,
    "departure": _departure,
    "statement": _statement,
    "checkpoint": _registration,
}
assert tuple(_BUILDERS) == MESSAGE_TYPES


def check_field_by_field(obj: object) -> Event:
    """The typed event for a decoded JSON value, or :class:`InvalidEvent` naming the first field wrong, in the contract's words.

    Written apart from the schema, rule by rule: :func:`validate` asks it why
    a message was refused, and tests hold it to the schema's verdicts.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent("$", f"wrong type: expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind is None:
        raise InvalidEvent("type", "missing")
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise InvalidEvent("type", f"unknown type {str(kind)[:32]!r}: expected one of {list(MESSAGE_TYPES)}")
    return _BUILDERS[kind](_upcast(obj))


_SCHEMA: Final = msgspec.json.Decoder(Event)
#: the fields each message type's record reads; others are ignored
_FIELDS: Final[dict[str, frozenset[str]]] = {
    kind.type: frozenset(kind.__struct_fields__) for kind in (Crossing, Departure, Statement, Registration)
}
assert tuple(_FIELDS) == MESSAGE_TYPES
_REFUSED: Final = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def read_json(data: bytes) -> Event | None:
    """The event in ``data`` when the schema accepts it as it stands; None when it may not.

    "As it stands": at this worker's schema version and with no fields the
    schema does not read, so one decode in compiled code answers. For
    anything else (None), :func:`events.codec.decode` gives the verdict and
    the reason.
    """
    try:
        event = _SCHEMA.decode(data)
    except Exception:  # noqa: BLE001 - refused, or a check that failed unexpectedly: decode() says which, and input never stops the stream
        return None
    return event if event.schema_version == SCHEMA_VERSION else None


def validate(obj: object) -> Event:
    """Return the typed event for a decoded JSON value, or raise :class:`InvalidEvent`."""
    refusal: Exception | None = None
    if isinstance(obj, dict):
        kind = obj.get("type")
        fields = _FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is not None:
            try:
                current = _upcast(obj)
                return msgspec.convert({k: v for k, v in current.items() if k in fields or k == "type"}, Event)
            except (*_REFUSED, InvalidEvent) as exc:
                refusal = exc
    check_field_by_field(obj)
    # the schema refused what the field-by-field reading takes: tests keep this from happening; the schema decides
    raise refusal if isinstance(refusal, InvalidEvent) else InvalidEvent(_field_named(refusal), f"refused by the schema: {refusal}")


def _field_named(error: Exception | None) -> str:
    found = re.search(r"at `\$\.(\w+)", str(error))
    return found.group(1) if found else "$"

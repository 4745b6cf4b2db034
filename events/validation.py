"""Validation: a JSON object in, a typed event out, or an error naming the field.

Pure functions, shared by the stream agents, ``POST /events`` and ``publish``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import pycountry

from events.model import (
    MESSAGE_TYPES,
    METRICS,
    MODES,
    SCHEMA_VERSION,
    Crossing,
    Departure,
    Event,
    Registration,
    Statement,
)
from events.times import parse_rfc3339

MAX_COUNT: Final = 1_000_000
MAX_TEXT: Final = 4096
MAX_NAME: Final = 128
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SLUG_MAX: Final = 64
COUNTRIES: Final = frozenset(c.alpha_2 for c in pycountry.countries)

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
    if len(value) > 128:
        raise InvalidEvent("event_id", f"too long: {len(value)} characters, at most 128")
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
    if len(value) > _SLUG_MAX or not _SLUG.match(value):
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
    if abs(value) > 1e15:
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


def validate(obj: object) -> Event:
    """Return the typed event for a decoded JSON value, or raise :class:`InvalidEvent`."""
    if not isinstance(obj, dict):
        raise InvalidEvent("$", f"wrong type: expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind is None:
        raise InvalidEvent("type", "missing")
    if not isinstance(kind, str) or kind not in _BUILDERS:
        raise InvalidEvent("type", f"unknown type {str(kind)[:32]!r}: expected one of {list(MESSAGE_TYPES)}")
    return _BUILDERS[kind](_upcast(obj))


# -- the hot path ----------------------------------------------------------------
#
# The stream validates every crossing and departure it counts. The checks above
# build a typed record and name the field on failure; the functions below only
# answer "valid, and these are the fields the counts need" for the common shape,
# and return None for anything else, so the caller falls back to
# :func:`validate` for the verdict and the error. They never accept what
# :func:`validate` rejects, nor give other values (tests/unit/test_fast_path.py).

#: a counted event's essentials: event_id, event time (Unix seconds), count, and
#: the series keys: (border, to_country, from_country) or (country,)
Counted = tuple[str, float, int, tuple[str, ...]]

_CACHE_LIMIT: Final = 65536
#: "YYYY-MM-DDTHH:MM" -> Unix seconds, for prefixes of canonical UTC times that parsed
_minutes: dict[str, float] = {}
#: ":SSZ", the end of a canonical UTC time after its minute -> SS
_SECOND_SUFFIXES: Final = {f":{s:02d}Z": s for s in range(60)}
#: checkpoint slugs that passed :func:`_slug`
_slugs: set[str] = set()


def _learn_time(text: object) -> float | None:
    """Parse a time the caches did not know; remember its minute if it has the canonical shape, else None."""
    if type(text) is not str or len(text) != 20 or text[19] != "Z" or text[16] != ":":
        return None
    try:
        seconds = parse_rfc3339(text).timestamp()
    except ValueError:
        return None
    if len(_minutes) >= _CACHE_LIMIT:
        _minutes.clear()
    _minutes[text[:16]] = seconds - int(text[17:19])
    return seconds


def _fast_slug(value: object) -> bool:
    if type(value) is not str:
        return False
    if value in _slugs:
        return True
    if len(value) > _SLUG_MAX or not _SLUG.match(value):
        return False
    if len(_slugs) >= _CACHE_LIMIT:
        _slugs.clear()
    _slugs.add(value)
    return True


def _fast_extras_valid(obj: dict[str, Any]) -> bool:
    """Whether the optional fields both counted kinds share are absent or plainly valid."""
    version = obj.get("schema_version", 1)  # absent: version 1, as _upcast reads it
    source = obj.get("source")
    return type(version) is int and version == SCHEMA_VERSION and (source is None or (type(source) is str and 0 < len(source) <= MAX_TEXT))


def _fast_event_time(text: object) -> float | None:
    if type(text) is not str:
        return None
    # both found: the text is a known canonical minute and ":SSZ", so exactly the canonical shape
    minute = _minutes.get(text[:16])
    second = _SECOND_SUFFIXES.get(text[16:])
    if minute is None or second is None:
        return _learn_time(text)
    return minute + second


# The two functions below are the per-event cost of the stream, so they read
# the required fields by subscript (a missing one is a KeyError, free in
# CPython 3.11 until raised) and look at the optional ones only when the object
# has more fields than the required ones. A list or an object where a string
# belongs makes a set lookup raise TypeError: also "not the common shape".


def fast_crossing(obj: object) -> Counted | None:
    """The essentials of a valid crossing in its common shape, or None (then use :func:`validate`)."""
    try:  # not a JSON object, or a time that is not a string: TypeError
        kind, event_id, count, occurred_at = obj["type"], obj["event_id"], obj["count"], obj["occurred_at"]  # type: ignore[index]
        border, from_country, to_country = obj["border"], obj["from_country"], obj["to_country"]  # type: ignore[index]
        if (
            kind != "crossing"
            or type(event_id) is not str
            or not 0 < len(event_id) <= 128
            or not event_id.isprintable()
            or type(count) is not int
            or not 1 <= count <= MAX_COUNT
            or from_country not in COUNTRIES
            or to_country not in COUNTRIES
            or from_country == to_country
            or (border not in _slugs and not _fast_slug(border))
            or (len(obj) != 7 and not _fast_crossing_extras_valid(obj))  # type: ignore[arg-type]
        ):
            return None
    except (KeyError, TypeError):
        return None
    event_time = _fast_event_time(occurred_at)
    return None if event_time is None else (event_id, event_time, count, (border, to_country, from_country))


def _fast_crossing_extras_valid(obj: dict[str, Any]) -> bool:
    mode = obj.get("mode")
    return _fast_extras_valid(obj) and (mode is None or (type(mode) is str and mode in MODES))


def fast_departure(obj: object) -> Counted | None:
    """The essentials of a valid departure in its common shape, or None (then use :func:`validate`)."""
    if type(obj) is not dict:
        return None
    try:
        kind, event_id, count, occurred_at = obj["type"], obj["event_id"], obj["count"], obj["occurred_at"]
        country, destination = obj["country"], obj["destination"]
        if (
            kind != "departure"
            or type(event_id) is not str
            or not 0 < len(event_id) <= 128
            or not event_id.isprintable()
            or type(count) is not int
            or not 1 <= count <= MAX_COUNT
            or country not in COUNTRIES
            or destination not in COUNTRIES
            or country == destination
        ):
            return None
    except (KeyError, TypeError):
        return None
    if len(obj) != 6:
        border = obj.get("border")
        if not _fast_extras_valid(obj) or (border is not None and not _fast_slug(border)):
            return None
    event_time = _fast_event_time(occurred_at)
    if event_time is None:
        return None
    return event_id, event_time, count, (country,)

"""Typed, immutable event records (schema version 1), and the one schema that reads them.

Each record is a ``msgspec`` Struct whose fields carry the schema's
constraints (types, lengths, ranges, patterns, enumerations), so a message
is decoded and checked in compiled code in one pass. The few rules no field
constraint can state (two countries that must differ, printable text, the
calendar behind a timestamp), and two that msgspec would check slower (the
slug and timestamp patterns), are in each record's ``__post_init__``, which
also turns the timestamps into Unix seconds (float, UTC) for the hot path.
Unknown extra fields are ignored. The records themselves refuse them, so
that :mod:`events.validation` reads a message that has any in full, as JSON,
before the record reads the fields it knows: msgspec would skip them unread.

:mod:`events.validation` reads messages with these records and names the
field of a rejected one; ``events/schema/*.json`` describe the same rules
for upstream systems (tests/unit/test_schema.py keeps them in agreement).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, ClassVar, Final, Literal

import msgspec
import pycountry
from msgspec import Meta
from msgspec.structs import force_setattr

from events.times import seconds_of

SCHEMA_VERSION: Final = 1

EventType = Literal["crossing", "departure", "statement"]
#: the types counted or kept, each on a topic of its own
EVENT_TYPES: Final[tuple[EventType, ...]] = ("crossing", "departure", "statement")
#: every type a message can have: the events, and checkpoint registrations (which travel on the crossings topic)
MESSAGE_TYPES: Final[tuple[str, ...]] = (*EVENT_TYPES, "checkpoint")
MODES: Final = frozenset({"foot", "car", "bus", "train", "air"})
METRICS: Final = frozenset({"entries", "departures", "exits", "queue_km"})
COUNTRIES: Final = frozenset(c.alpha_2 for c in pycountry.countries)

MAX_COUNT: Final = 1_000_000
MAX_TEXT: Final = 4096
MAX_NAME: Final = 128
MAX_EVENT_ID: Final = 128
MAX_SLUG: Final = 64
MAX_VALUE: Final = 10**15
SLUG_PATTERN: Final = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"

if TYPE_CHECKING:
    # what the fields hold once read: the schema below says what they are read from
    Text = str
    EventId = str
    Name = str
    Slug = str
    Country = str
    Mode = str
    Metric = str
    Time = float
    Count = int
    Value = int | float
    Version = int
    Countries = frozenset[str]
else:
    Text = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT)]
    EventId = Annotated[str, Meta(min_length=1, max_length=MAX_EVENT_ID)]
    Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME)]
    #: its pattern is checked in ``__post_init__`` (:func:`_check_slug`)
    Slug = Annotated[str, Meta(min_length=1, max_length=MAX_SLUG)]
    Country = Literal[tuple(sorted(COUNTRIES))]
    Mode = Literal[tuple(sorted(MODES))]
    Metric = Literal[tuple(sorted(METRICS))]
    #: RFC 3339 text on the wire (``parse_rfc3339`` checks it: :func:`seconds_of`); Unix seconds once read (``__post_init__``)
    Time = str
    #: 12.0 is an integer to JSON Schema too: read as 12 (``__post_init__``)
    Count = Annotated[int, Meta(ge=1, le=MAX_COUNT)] | Annotated[float, Meta(ge=1, le=MAX_COUNT)]
    Value = Annotated[int, Meta(ge=0, le=MAX_VALUE)] | Annotated[float, Meta(ge=0, le=MAX_VALUE)]
    Version = Annotated[int, Meta(ge=1)]
    #: two different codes on the wire; a frozenset once read (``__post_init__``)
    Countries = Annotated[list[Country], Meta(min_length=2, max_length=2)]

# Checks that msgspec would run as Python regular expressions (``Meta(pattern=...)``) cost more per
# event than the rest of the decode together (docs/benchmarks.md): the few checkpoint slugs are
# remembered once matched, and a timestamp is checked by parsing it, which its minute's cache skips.
_SLUG = re.compile(SLUG_PATTERN)
_SLUGS_KEPT: Final = 65536
_slugs: set[str] = set()


def _check_slug(text: str | None) -> None:
    if text is None or text in _slugs:
        return
    if not _SLUG.match(text):
        raise ValueError("not a lowercase slug")
    if len(_slugs) >= _SLUGS_KEPT:
        _slugs.clear()
    _slugs.add(text)


def _seconds(record: msgspec.Struct, field: str, value: float | str) -> float:
    """A time field in Unix seconds; read from its text when the record came off the wire."""
    if not isinstance(value, str):
        return value
    seconds = seconds_of(value)  # ValueError for text that is not RFC 3339, or a date the calendar has not
    force_setattr(record, field, seconds)
    return seconds


def _whole(record: msgspec.Struct, count: float) -> None:
    if type(count) is float:
        if not count.is_integer():
            raise ValueError("expected an integer")
        force_setattr(record, "count", int(count))


class _Message(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=True):
    """A message: its ``type`` is the tag that picks the record."""


class Crossing(_Message, frozen=True, tag="crossing"):
    event_id: EventId
    occurred_at: Time
    border: Slug
    from_country: Country
    to_country: Country
    count: Count
    mode: Mode | None = None
    source: Text | None = None
    schema_version: Version = 1
    type: ClassVar[Literal["crossing"]] = "crossing"

    def __post_init__(self) -> None:
        if not self.event_id.isprintable():
            raise ValueError("control characters are not allowed")
        if self.border not in _slugs:
            _check_slug(self.border)
        if type(self.occurred_at) is str:
            force_setattr(self, "occurred_at", seconds_of(self.occurred_at))
        if type(self.count) is not int:
            _whole(self, self.count)
        if self.from_country == self.to_country:
            raise ValueError("to_country is the same as from_country")

    @property
    def event_time(self) -> float:
        return self.occurred_at


class Departure(_Message, frozen=True, tag="departure"):
    event_id: EventId
    occurred_at: Time
    country: Country
    destination: Country
    count: Count
    border: Slug | None = None
    source: Text | None = None
    schema_version: Version = 1
    type: ClassVar[Literal["departure"]] = "departure"

    def __post_init__(self) -> None:
        if not self.event_id.isprintable():
            raise ValueError("control characters are not allowed")
        _check_slug(self.border)
        if type(self.occurred_at) is str:
            force_setattr(self, "occurred_at", seconds_of(self.occurred_at))
        if type(self.count) is not int:
            _whole(self, self.count)
        if self.country == self.destination:
            raise ValueError("destination is the same as country")

    @property
    def event_time(self) -> float:
        return self.occurred_at


class Statement(_Message, frozen=True, tag="statement"):
    event_id: EventId
    issued_at: Time
    source: Text
    country: Country
    metric: Metric
    value: Value
    since: Time | None = None
    border: Slug | None = None
    url: Text | None = None
    quote: Text | None = None
    schema_version: Version = 1
    type: ClassVar[Literal["statement"]] = "statement"

    def __post_init__(self) -> None:
        if not self.event_id.isprintable():
            raise ValueError("control characters are not allowed")
        _check_slug(self.border)
        issued_at = _seconds(self, "issued_at", self.issued_at)
        if self.since is not None and _seconds(self, "since", self.since) > issued_at:
            raise ValueError("since is after issued_at")

    @property
    def event_time(self) -> float:
        return self.issued_at


class Registration(_Message, frozen=True, tag="checkpoint"):
    """A checkpoint registered, or its countries or name changed, at run time.

    It travels on the crossings topic, keyed by its checkpoint like the
    crossings at it, so each partition applies it at one point in its own
    input order: a replay judges every crossing as the live workers did.
    """

    event_id: EventId
    registered_at: Time
    border: Slug
    countries: Countries
    name: Name
    source: Text | None = None
    schema_version: Version = 1
    type: ClassVar[Literal["checkpoint"]] = "checkpoint"

    def __post_init__(self) -> None:
        if not (self.event_id.isprintable() and self.name.isprintable()):
            raise ValueError("control characters are not allowed")
        _check_slug(self.border)
        _seconds(self, "registered_at", self.registered_at)
        if type(self.countries) is list:
            if self.countries[0] == self.countries[1]:
                raise ValueError("the same country twice")
            force_setattr(self, "countries", frozenset(self.countries))

    @property
    def event_time(self) -> float:
        return self.registered_at


Event = Crossing | Departure | Statement | Registration

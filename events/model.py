"""Typed, immutable event records (schema version 1).

Times are kept as Unix seconds (float, UTC) for the hot path; the original
text of every field stays available through the source bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

SCHEMA_VERSION: Final = 1

EventType = Literal["crossing", "departure", "statement"]
#: the types counted or kept, each on a topic of its own
EVENT_TYPES: Final[tuple[EventType, ...]] = ("crossing", "departure", "statement")
#: every type a message can have: the events, and checkpoint registrations (which travel on the crossings topic)
MESSAGE_TYPES: Final[tuple[str, ...]] = (*EVENT_TYPES, "checkpoint")
MODES: Final = frozenset({"foot", "car", "bus", "train", "air"})
METRICS: Final = frozenset({"entries", "departures", "exits", "queue_km"})


@dataclass(frozen=True, slots=True)
class Crossing:
    event_id: str
    occurred_at: float
    border: str
    from_country: str
    to_country: str
    count: int
    mode: str | None = None
    source: str | None = None
    type: Literal["crossing"] = "crossing"

    @property
    def event_time(self) -> float:
        return self.occurred_at


@dataclass(frozen=True, slots=True)
class Departure:
    event_id: str
    occurred_at: float
    country: str
    destination: str
    count: int
    border: str | None = None
    source: str | None = None
    type: Literal["departure"] = "departure"

    @property
    def event_time(self) -> float:
        return self.occurred_at


@dataclass(frozen=True, slots=True)
class Statement:
    event_id: str
    issued_at: float
    source: str
    country: str
    metric: str
    value: int | float
    since: float | None = None
    border: str | None = None
    url: str | None = None
    quote: str | None = None
    type: Literal["statement"] = "statement"

    @property
    def event_time(self) -> float:
        return self.issued_at


@dataclass(frozen=True, slots=True)
class Registration:
    """A checkpoint registered, or its countries or name changed, at run time.

    It travels on the crossings topic, keyed by its checkpoint like the
    crossings at it, so each partition applies it at one point in its own
    input order: a replay judges every crossing as the live workers did.
    """

    event_id: str
    registered_at: float
    border: str
    countries: frozenset[str]
    name: str
    source: str | None = None
    type: Literal["checkpoint"] = "checkpoint"

    @property
    def event_time(self) -> float:
        return self.registered_at


Event = Crossing | Departure | Statement | Registration

"""Typed, immutable event records (schema version 1).

Times are kept as Unix seconds (float, UTC) for the hot path; the original
text of every field stays available through the source bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

SCHEMA_VERSION: Final = 1

EventType = Literal["crossing", "departure", "statement"]
EVENT_TYPES: Final[tuple[EventType, ...]] = ("crossing", "departure", "statement")
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


Event = Crossing | Departure | Statement

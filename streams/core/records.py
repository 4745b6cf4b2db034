"""The state records of one partition and their keys: one schema for the local store and the changelog.

One table holds a partition's dedup segments (``D``), series (``S``),
statements (``T``), checkpoint registrations (``C``) and progress (``P``), so that one changelog partition
orders all of its writes; the progress record is written last in every flush.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

import orjson

NO_OFFSET: Final = -1


class SeriesCode(StrEnum):
    """What a series counts, by the one-letter code its state keys and window results carry."""

    #: crossings at a checkpoint
    BORDER = "b"
    #: crossings into a country
    ENTRIES = "e"
    #: crossings out of a country
    EXITS = "x"
    #: onward departures out of a host country
    DEPARTURES = "d"

    @property
    def series_name(self) -> str:
        """The series' name in window results: border, entries, exits or departures."""
        return self.name.lower()


@dataclass(slots=True)
class Series:
    """Counts per base bucket for one key, from one input partition."""

    buckets: dict[int, int] = field(default_factory=dict)
    total: int = 0
    offset: int = NO_OFFSET

    def encode(self) -> bytes:
        return orjson.dumps({"o": self.offset, "t": self.total, "b": self.buckets}, option=orjson.OPT_NON_STR_KEYS)

    @classmethod
    def decode(cls, data: bytes) -> Series:
        obj = orjson.loads(data)
        return cls({int(k): v for k, v in obj["b"].items()}, obj["t"], obj["o"])


@dataclass(slots=True)
class Progress:
    offset: int = NO_OFFSET
    stream_time: float | None = None
    #: windows ending at or before this instant have been emitted as final
    closed_through: float = -math.inf

    def encode(self) -> bytes:
        closed = None if math.isinf(self.closed_through) else self.closed_through
        return orjson.dumps({"o": self.offset, "st": self.stream_time, "c": closed})

    @classmethod
    def decode(cls, data: bytes) -> Progress:
        obj = orjson.loads(data)
        closed = obj["c"]
        return cls(obj["o"], obj["st"], -math.inf if closed is None else closed)


# State keys. One table holds dedup segments, series, statements, registrations and progress,
# so that one changelog partition orders all of a partition's writes.
def series_key(topic: str, partition: int, series_code: str, key: str) -> bytes:
    return f"S|{topic}|{partition}|{series_code}|{key}".encode()


def statement_key(topic: str, partition: int, event_id: str) -> bytes:
    return f"T|{topic}|{partition}|{event_id}".encode()


def checkpoint_key(topic: str, partition: int, slug: str) -> bytes:
    return f"C|{topic}|{partition}|{slug}".encode()


def progress_key(topic: str, partition: int) -> bytes:
    return f"P|{topic}|{partition}|progress".encode()


def dedup_key(topic: str, partition: int, segment: str) -> bytes:
    return f"D|{topic}|{partition}|{segment}".encode()


def state_prefix(topic: str, partition: int) -> tuple[bytes, ...]:
    return tuple(f"{series_code}|{topic}|{partition}|".encode() for series_code in "CDSTP")

"""The state records of one partition and their keys: one schema for the local store and the changelog.

One table holds a partition's dedup segments (``D``), series (``S``),
statements (``T``), checkpoint registrations (``C``) and progress (``P``), so that one changelog partition
orders all of its writes; the progress record is written last in every flush.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, NamedTuple

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


# State keys: ``tag|topic|partition|rest``. One table holds dedup segments, series, statements,
# registrations and progress, so that one changelog partition orders all of a partition's writes.
#: the tags of the state records: checkpoint registrations, dedup segments, series, statements, progress
STATE_TAGS: Final = "CDSTP"


class StateKey(NamedTuple):
    """A state key's parts."""

    #: one of :data:`STATE_TAGS`
    tag: str
    topic: str
    partition: int
    #: ``series_code|key``, a statement's event id, a checkpoint's slug, a dedup segment, or ``progress``
    rest: str


def _state_key(tag: str, topic: str, partition: int, rest: str) -> bytes:
    return f"{tag}|{topic}|{partition}|{rest}".encode()


def parse_state_key(key: bytes) -> StateKey:
    """The parts of a key made by one of the functions below."""
    tag, topic, partition, rest = key.decode().split("|", 3)
    return StateKey(tag, topic, int(partition), rest)


def series_key(topic: str, partition: int, series_code: str, key: str) -> bytes:
    return _state_key("S", topic, partition, f"{series_code}|{key}")


def parse_series_rest(rest: str) -> tuple[SeriesCode, str]:
    """The series code and key of a series record's :attr:`StateKey.rest`."""
    series_code, _, key = rest.partition("|")
    return SeriesCode(series_code), key


def statement_key(topic: str, partition: int, event_id: str) -> bytes:
    return _state_key("T", topic, partition, event_id)


def checkpoint_key(topic: str, partition: int, slug: str) -> bytes:
    return _state_key("C", topic, partition, slug)


def progress_key(topic: str, partition: int) -> bytes:
    return _state_key("P", topic, partition, "progress")


def dedup_key(topic: str, partition: int, segment: str) -> bytes:
    return _state_key("D", topic, partition, segment)


def state_prefix(topic: str, partition: int) -> tuple[bytes, ...]:
    """The prefixes of every state key of one partition, each as :func:`key_prefix` gives it."""
    return tuple(_state_key(tag, topic, partition, "") for tag in STATE_TAGS)


def key_prefix(key: bytes) -> bytes:
    """``b"S|crossings|3|"`` for ``b"S|crossings|3|b|upper-lars"``: the key's tag, topic and partition."""
    return b"|".join(key.split(b"|", 3)[:3]) + b"|"

"""The HTTP parameters and bodies of the worker's routes, parsed strictly: :class:`BadParameter` names the bad one.

Pure (no aiohttp): ``streams/web/views.py`` hands in what the request holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import orjson

from events.times import parse_rfc3339
from streams.core.config import CoreConfig
from streams.core.queries import WindowQuery


class BadParameter(ValueError):
    """A parameter that cannot be used: a 400 naming it."""

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


def time_parameter(name: str, value: str | None) -> float | None:
    """An RFC 3339 date-time with an offset, as Unix seconds; None when absent or empty."""
    if value is None or value == "":
        return None
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError:
        raise BadParameter(name, f"not an RFC 3339 date-time with an offset: {value[:40]!r}") from None


def window_query(config: CoreConfig, window: str | None, start: str | None, end: str | None) -> WindowQuery:
    """``window``, ``start`` and ``end`` of a counts or net-inflow query (the bucket when no window is named)."""
    name = window or config.bucket.name
    try:
        spec = config.window(name)
    except KeyError:
        raise BadParameter("window", f"unknown window {name!r}: expected one of {[w.name for w in config.windows]}") from None
    return WindowQuery(spec, time_parameter("start", start), time_parameter("end", end))

"""RFC 3339 timestamps with an explicit offset, and durations such as ``6h``."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from typing import Final

RFC3339_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(RFC3339_PATTERN)
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 date-time that names its offset; raise ValueError otherwise."""
    if not _RFC3339.match(text):
        raise ValueError("not an RFC 3339 date-time with an explicit offset")
    head, _, frac = text.partition(".")
    if frac:
        # fromisoformat accepts at most 6 fractional digits: truncate, keep the offset.
        digits = re.match(r"\d+", frac)
        assert digits is not None
        text = f"{head}.{digits.group()[:6]}{frac[digits.end() :]}"
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    try:
        moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is in year 0 in UTC: no datetime can hold it, so nothing could format it later
        raise ValueError("outside the years 0001 to 9999 in UTC") from None
    return moment


_MINUTES_KEPT: Final = 65536
#: "YYYY-MM-DDTHH:MM" -> Unix seconds, for the minutes of canonical UTC times (":SSZ" after the minute) read so far
_minutes: dict[str, float] = {}
#: ":SSZ", the end of a canonical UTC time after its minute -> SS
_SECOND_SUFFIXES: Final = {f":{s:02d}Z": s for s in range(60)}


def seconds_of(text: str) -> float:
    """``parse_rfc3339(text).timestamp()``, without parsing again a minute of canonical UTC times read before.

    Event times arrive in order, mostly as ``YYYY-MM-DDTHH:MM:SSZ``: the
    minute is looked up, the second added.
    """
    minute = _minutes.get(text[:16])
    second = _SECOND_SUFFIXES.get(text[16:])
    if minute is not None and second is not None:  # both found: exactly the canonical shape, of a minute parsed before
        return minute + second
    seconds = parse_rfc3339(text).timestamp()
    if second is not None and len(text) == 20:
        if len(_minutes) >= _MINUTES_KEPT:
            _minutes.clear()
        _minutes[text[:16]] = seconds - second
    return seconds


def format_utc(moment: datetime | float) -> str:
    """Format an instant (datetime or Unix seconds) as RFC 3339 in UTC with ``Z``, the year always in four digits."""
    if not isinstance(moment, datetime):
        return _format_seconds(moment)
    return _format_datetime(moment)


#: window boundaries repeat in every answer about them: a query formats hundreds per key
@functools.lru_cache(maxsize=16384)
def _format_seconds(seconds: float) -> str:
    return _format_datetime(datetime.fromtimestamp(seconds, tz=UTC))


def _format_datetime(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    # not strftime("%Y"): the C library writes year 1 as "1", which no RFC 3339 reader takes
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"


def parse_duration(text: str | float | timedelta) -> timedelta:
    """Parse ``90s``, ``15m``, ``6h``, ``30d``, ``1w`` (or seconds as a number)."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, int | float):
        return timedelta(seconds=text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit, e.g. 6h, 30d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    """An exact spelling in hours, minutes or seconds (``86400s`` -> ``24h``)."""
    seconds = int(delta.total_seconds())
    for unit in ("h", "m"):
        size = int(_UNIT_SECONDS[unit])
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

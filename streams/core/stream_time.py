"""Stream time and lateness: when an event is too late, too far ahead, and what stream time has closed.

Each input partition keeps its own stream time: the newest event time among
the events it counted (a statement moves it too). Everything time-based in
the semantics is measured against it, never against the wall clock, so a
replay of the same log judges every event as the live worker did:

* an event older than stream time minus the grace is **late**: dead-lettered,
  not counted;
* windows end for good once stream time minus the grace passes their end
  (:func:`closed_through`), and buckets older than the retention behind
  stream time are dropped (:func:`retention_cutoff`);
* an event more than ``max_future`` ahead of when it was sent is **too far
  ahead** (:func:`future_limit`): it is dead-lettered with reason ``future``
  and does not move stream time, which would otherwise make every later event
  late;
* an event before the configured earliest time is **out of range**
  (:func:`out_of_range`): dead-lettered with reason ``out-of-range``, so no
  window starts before it (nor before year 1, which no answer could spell).

Both the per-message path and the batch loop of
:class:`~streams.core.state.PartitionState` call these functions: each rule is
written here once.
"""

from __future__ import annotations

from events.times import format_utc
from events.validation import InvalidEvent
from streams.core.windows import bucket_start


class TooFarAhead(InvalidEvent):
    """An event time too far ahead of when the event was sent: dead-lettered with reason ``future``."""


class OutOfRange(InvalidEvent):
    """An event time before the earliest accepted: dead-lettered with reason ``out-of-range``."""


def advanced(stream_time: float | None, event_time: float) -> float:
    """Stream time after an event at ``event_time`` is applied."""
    return event_time if stream_time is None or event_time > stream_time else stream_time


def is_late(event_time: float, stream_time: float | None, grace: float) -> bool:
    """An event older than stream time minus the grace is late (none is, before the first)."""
    return stream_time is not None and event_time < stream_time - grace


def closed_through(stream_time: float, grace: float) -> float:
    """Every window ending at or before this is final: no event that could still change it would be on time."""
    return stream_time - grace


def retention_cutoff(stream_time: float, retention: float, bucket_seconds: int) -> int:
    """Buckets ending at or before this are dropped.

    Aligned to the bucket, so which buckets are held depends on stream time
    only, not on batch boundaries or restarts: a replay holds the same.
    """
    return bucket_start(stream_time - retention, bucket_seconds)


def future_limit(timestamp_ms: int, now: float, max_future: float) -> float:
    """The latest event time accepted for a record with this Kafka timestamp (-1 if it has none).

    The record's timestamp (when the producer sent it, or the broker
    appended it) makes a replay judge an event as the live worker did; the
    wall clock caps it, so a record stamped in the future gains nothing.
    """
    reference = timestamp_ms * 0.001 if 0 <= timestamp_ms and timestamp_ms * 0.001 < now else now
    return reference + max_future


def too_far_ahead(field: str, event_time: float, limit: float, max_future: float) -> TooFarAhead:
    """The error for an event at ``event_time`` past ``limit`` (:func:`future_limit`), naming its time field."""
    sent = format_utc(limit - max_future)
    return TooFarAhead(field, f"{format_utc(event_time)} is more than {max_future} s ahead of {sent}, when it was sent")


def out_of_range(field: str, event_time: float, earliest: float, limit: float, max_future: float) -> InvalidEvent | None:
    """The error for an event time outside ``[earliest, limit]`` (``limit``: :func:`future_limit`), or None.

    The one verdict on an event's time range, for both paths of streams/core/state.py.
    """
    if event_time > limit:
        return too_far_ahead(field, event_time, limit, max_future)
    if event_time < earliest:
        return OutOfRange(field, f"{format_utc(event_time)} is before {format_utc(earliest)}, the earliest accepted (BORDERFLOW_EARLIEST)")
    return None

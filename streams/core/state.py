"""The pure processing core: one input partition's state and how events change it.

No Faust or Kafka here. The agents feed ``(offset, bytes)`` pairs into a
:class:`PartitionState` and write out what :meth:`PartitionState.flush` returns.

Exactness under at-least-once delivery rests on offsets kept *in* the state:

* the progress record (stream time, last applied offset) is written last in
  every flush, to the same changelog partition as the series and dedup
  segments it covers (one table holds them all), so
  when it is present everything before it is too; events at or below its
  offset are skipped on redelivery;
* every series record carries the offset through which it is applied (the
  progress offset of the flush that wrote it: every event up to there that
  touches the series is in it), so a flush cut short by a crash (some series
  written, the progress record not) is not applied twice when the events are
  redelivered;
* the dedup index stores the offset of the event that first carried each id,
  so the redelivery of that same message is not taken for a duplicate. It is
  written as one *segment* record per flush (the ids first seen in it), not
  one record per event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

import orjson

from events.checkpoints import Checkpoint
from events.codec import decode, to_json
from events.model import Crossing, Departure, Event, Registration, Statement
from events.partitioning import home_key, partition_for_key
from events.validation import InvalidEvent, read_json
from streams.core.config import CoreConfig
from streams.core.dedup import DedupIndex
from streams.core.effects import DeadLetter, Effects, Outcome, WindowResult
from streams.core.records import (
    NO_OFFSET,
    Progress,
    Series,
    SeriesCode,
    checkpoint_key,
    dedup_key,
    parse_series_rest,
    parse_state_key,
    progress_key,
    series_key,
    statement_key,
)
from streams.core.stream_time import (
    OutOfRange,
    TooFarAhead,
    advanced,
    closed_through,
    future_limit,
    is_late,
    out_of_range,
    retention_cutoff,
)
from streams.core.windows import bucket_start, closing_windows

#: a checkpoint this partition does not count yet (None means counted, unregistered)
_UNKNOWN: Final[frozenset[str]] = frozenset({"not counted here"})
#: the field each message type's time is read from, to name it when it is out of range
_TIME_FIELDS: Final = {"crossing": "occurred_at", "departure": "occurred_at", "statement": "issued_at", "checkpoint": "registered_at"}
#: home partitions remembered per partition state (keys are checkpoints and countries: few, unless input is hostile)
_HOMES_KEPT: Final = 65536


#: the record of each counted type
_COUNTED: Final[dict[str, type[Crossing | Departure]]] = {"crossing": Crossing, "departure": Departure}


#: the series a counted event counts in, by type: their codes, in the order of :func:`series_names`
SERIES_CODES: Final[dict[type[Crossing | Departure], tuple[SeriesCode, ...]]] = {
    Crossing: (SeriesCode.BORDER, SeriesCode.ENTRIES, SeriesCode.EXITS),
    Departure: (SeriesCode.DEPARTURES,),
}


def series_names(event: Crossing | Departure) -> tuple[str, ...]:
    """The names of the series an event counts in.

    A crossing counts in its checkpoint's, its entries' and its exits'; a departure in its country's.
    """
    if type(event) is Crossing:
        return event.border, event.to_country, event.from_country
    assert isinstance(event, Departure)
    return (event.country,)


def in_total(event_time: float, since: float | None) -> bool:
    """Whether an event counts in its series' totals: those count from BORDERFLOW_SINCE on."""
    return since is None or event_time >= since


class PartitionState:
    """The aggregation state built from one input topic partition."""

    def __init__(self, topic: str, partition: int, event_type: str, config: CoreConfig, clock: Callable[[], float] = time.time) -> None:
        self.topic = topic
        self.clock = clock
        self.partition = partition
        self.config = config
        self.event_type = event_type
        self.progress = Progress()
        self.series: dict[tuple[str, str], Series] = {}
        self.statements: dict[str, dict[str, Any]] = {}
        self.dedup = DedupIndex()
        self._dirty_series: set[tuple[str, str]] = set()
        self._dirty_statements: set[str] = set()
        self._dirty_progress = False
        self._swept_through = -math.inf
        #: the highest offset a loaded series record was written through (see :meth:`flush`)
        self._series_ahead_through = NO_OFFSET
        self._homes: dict[bytes, int] = {}
        #: checkpoints this partition counts: their registered countries, or None for an unregistered one
        self._checkpoints: dict[str, frozenset[str] | None] = {}
        self._unregistered = 0
        #: checkpoints registered or changed at run time in this partition's input (over the shipped ones)
        self._registrations: dict[str, Checkpoint] = {}
        self._dirty_registrations: set[str] = set()

    def _home_of(self, key: bytes) -> int:
        """The home partition of events routed by ``key`` (a checkpoint or a country: :func:`home_key`)."""
        home = self._homes.get(key)
        if home is None:
            assert self.config.partitions is not None
            if len(self._homes) >= _HOMES_KEPT:
                self._homes.clear()
            home = self._homes[key] = partition_for_key(key, self.config.partitions)
        return home

    def _away_home(self, value: bytes | None) -> int | None:
        """The home partition of a valid event that is not at home here; None for any other message."""
        if self.config.partitions is None:
            return None
        try:
            event = decode(value, max_bytes=self.config.max_event_bytes)
        except Exception:  # noqa: BLE001 - invalid input was dead-lettered where it arrived
            return None
        if not self._belongs(event):
            return None
        home = self._home_of(home_key(event))
        return None if home == self.partition else home

    def _belongs(self, event: Event) -> bool:
        """Whether ``event`` may arrive on this partition's topic: its own type, or a registration with the crossings."""
        return event.type == self.event_type or (isinstance(event, Registration) and self.event_type == "crossing")

    # -- loading -----------------------------------------------------------
    def load(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Restore from table records (keys already filtered to this partition)."""
        parsed: list[tuple[str, str, bytes]] = []
        for key, value in records:
            tag, _, _, rest = parse_state_key(key)
            if tag == "P":  # first: the dedup index needs to know how far the partition was applied
                self.progress = Progress.decode(value)
            else:
                parsed.append((tag, rest, value))
        for tag, rest, value in parsed:  # registrations first: whether a loaded checkpoint is registered depends on them
            if tag == "C":
                self._registrations[rest] = Checkpoint.decode(rest, value)
        for tag, rest, value in parsed:
            if tag == "D":
                self.dedup.load(int(rest), value, self.progress.offset)
            elif tag == "S":
                series_code, name = parse_series_rest(rest)
                series = self.series[(series_code, name)] = Series.decode(value)
                self._series_ahead_through = max(self._series_ahead_through, series.offset)
                if series_code == SeriesCode.BORDER:
                    self._admit(name)
            elif tag == "T":
                self.statements[rest] = orjson.loads(value)

    # -- processing ----------------------------------------------------------
    def process(self, offset: int, value: bytes | None, effects: Effects, timestamp_ms: int = -1) -> Outcome:
        """Apply one message at ``offset``; idempotent for redelivered offsets.

        ``timestamp_ms`` is the record's Kafka timestamp (-1 if it has none): the
        reference an event's time may not be more than ``max_future`` ahead of.
        """
        if offset <= self.progress.offset:
            # Forwarded before, but maybe not delivered before a crash (the input was
            # not committed then): forward again; the home's dedup absorbs a second copy.
            home = self._away_home(value)
            if home is not None:
                effects.forwards.append((offset, home))
            effects.count("skipped")
            return "skipped"
        outcome = self._process(offset, value, effects, future_limit(timestamp_ms, self.clock(), self.config.max_future))
        self.progress.offset = offset
        self._dirty_progress = True
        effects.count(outcome)
        return outcome

    def process_many(self, messages: Iterable[tuple[int, bytes | None, int]], effects: Effects) -> None:
        """Apply ``(offset, value, timestamp_ms)`` in order: the same as :meth:`process` on each, faster.

        Runs of crossings or departures that are only to be counted take
        :meth:`_count_run`; anything else (statements, registrations, invalid
        input, redeliveries, late events, unknown fields) goes through
        :meth:`process`. Both apply the same rules, each written once
        (tests/unit/test_fast_path.py compares them).
        """
        kind = _COUNTED.get(self.event_type)
        if kind is None or self._series_ahead_through > self.progress.offset:
            # after a flush cut short: some series are ahead of the progress record, so each event is checked per series
            for offset, value, timestamp_ms in messages:
                self.process(offset, value, effects, timestamp_ms)
            return
        remaining = iter(messages)
        while (odd := self._count_run(remaining, kind, effects)) is not None:
            offset, value, timestamp_ms = odd
            self.process(offset, value, effects, timestamp_ms)

    def _count_run(
        self, messages: Iterator[tuple[int, bytes | None, int]], kind: type[Crossing | Departure], effects: Effects
    ) -> tuple[int, bytes | None, int] | None:
        """Apply messages that are only to be counted, in order; return the first that needs :meth:`process`, or None at the end.

        Counts are summed per (series, bucket) cell over the run and added to
        the series once per cell at its end: a batch of a busy checkpoint
        touches few cells. Everything :meth:`process` reads (progress, dedup,
        series) is up to date when this returns.
        """
        config, dedup = self.config, self.dedup
        is_duplicate, record = dedup.is_duplicate, dedup.record
        grace, bucket_seconds, since, max_bytes = config.grace, config.bucket_seconds, config.since, config.max_event_bytes
        earliest, max_future, time_field = config.earliest, config.max_future, _TIME_FIELDS[self.event_type]
        partitions, here, homes, forwards = config.partitions, self.partition, self._homes, effects.forwards
        #: a crossing at a checkpoint not yet counted here, or between other countries than its registered ones, is judged by process
        checkpoints, unknown = (self._checkpoints if self.event_type == "crossing" else None), _UNKNOWN
        cells: dict[tuple[tuple[str, ...], int, bool], int] = {}
        last, stream_time = self.progress.offset, self.progress.stream_time
        accepted = duplicate = forwarded = 0
        now, stamp, limit = self.clock(), None, 0.0
        odd = None
        for offset, value, timestamp_ms in messages:
            event = None if offset <= last or value is None or len(value) > max_bytes else read_json(value)
            if not isinstance(event, kind):
                odd = (offset, value, timestamp_ms)
                break
            if partitions is not None:
                key = home_key(event)
                home = homes.get(key)
                if home is None:
                    home = self._home_of(key)
                if home != here:
                    forwards.append((offset, home))
                    forwarded += 1
                    last = offset
                    continue
            if checkpoints is not None and isinstance(event, Crossing):
                countries = checkpoints.get(event.border, unknown)  # None: counted, unregistered
                if countries is not None and (
                    countries is unknown or event.to_country not in countries or event.from_country not in countries
                ):
                    odd = (offset, value, timestamp_ms)  # admitted or refused there (_judge_checkpoint), with the reason
                    break
            if timestamp_ms != stamp:
                stamp, limit = timestamp_ms, future_limit(timestamp_ms, now, max_future)
            event_time = event.occurred_at
            if out_of_range(time_field, event_time, earliest, limit, max_future) is not None:
                odd = (offset, value, timestamp_ms)  # dead-lettered there, with the reason
                break
            if is_duplicate(event.event_id, offset):
                duplicate += 1
                last = offset
                continue
            if is_late(event_time, stream_time, grace):
                odd = (offset, value, timestamp_ms)  # dead-lettered there, with the reason
                break
            record(event.event_id, offset, event_time)
            cell = (series_names(event), bucket_start(event_time, bucket_seconds), in_total(event_time, since))
            cells[cell] = cells.get(cell, 0) + event.count
            stream_time = advanced(stream_time, event_time)
            accepted += 1
            last = offset
        if accepted or duplicate or forwarded:
            self.progress.offset = last
            self.progress.stream_time = stream_time
            self._dirty_progress = True
            self._add_cells(SERIES_CODES[kind], cells)
            outcomes = effects.outcomes
            if accepted:
                outcomes["accepted"] = outcomes.get("accepted", 0) + accepted
            if duplicate:
                outcomes["duplicate"] = outcomes.get("duplicate", 0) + duplicate
            if forwarded:
                outcomes["forwarded"] = outcomes.get("forwarded", 0) + forwarded
        return odd

    def _add_cells(self, codes: tuple[SeriesCode, ...], cells: Mapping[tuple[tuple[str, ...], int, bool], int]) -> None:
        series_of, dirty = self.series, self._dirty_series
        targets_of: dict[tuple[str, ...], list[Series]] = {}
        for (names, bucket, counts_in_total), count in cells.items():
            targets = targets_of.get(names)
            if targets is None:
                targets = targets_of[names] = []
                for series_id in zip(codes, names, strict=True):
                    series = series_of.get(series_id)
                    if series is None:
                        series = series_of[series_id] = Series()
                    targets.append(series)
                    dirty.add(series_id)
            for series in targets:
                buckets = series.buckets
                buckets[bucket] = buckets.get(bucket, 0) + count
                if counts_in_total:
                    series.total += count

    def _process(self, offset: int, value: bytes | None, effects: Effects, limit: float) -> Outcome:
        home = self.partition
        try:
            event = decode(value, max_bytes=self.config.max_event_bytes)
            if not self._belongs(event):
                raise InvalidEvent("type", f"a {event.type} does not belong on topic {self.topic}")
            if self.config.partitions is not None:
                home = self._home_of(home_key(event))
            if home == self.partition:  # one away is judged at home
                outside = out_of_range(_TIME_FIELDS[event.type], event.event_time, self.config.earliest, limit, self.config.max_future)
                if outside is not None:
                    raise outside
                if isinstance(event, Crossing):
                    self._judge_checkpoint(event)
                elif isinstance(event, Registration):
                    self._judge_registration(event)
        except Exception as exc:  # noqa: BLE001 - input must never stop the stream
            if isinstance(exc, InvalidEvent):
                reason, detail = _dead_letter_reason(exc), exc.reason
            else:
                reason, detail = "invalid:$", f"unreadable: {exc!r}"
            effects.dead_letters.append(DeadLetter(reason, detail, offset, value))
            return "invalid"
        if home != self.partition:
            effects.forwards.append((offset, home))
            return "forwarded"
        if self.dedup.is_duplicate(event.event_id, offset):
            return "duplicate"
        if isinstance(event, Statement | Registration):  # kept, not windowed
            self._record_id(event, offset)
            if isinstance(event, Statement):
                self._keep_statement(event, offset)
                self._advance(event.event_time)
            else:
                self._register(event)  # its time, an operator's, never moves stream time
            return "accepted"
        stream_time = self.progress.stream_time
        if is_late(event.event_time, stream_time, self.config.grace):
            effects.dead_letters.append(
                DeadLetter("late", f"event time {event.event_time} < stream time {stream_time} - grace", offset, value)
            )
            return "late"
        self._record_id(event, offset)
        self._count(event, offset)
        self._advance(event.event_time)
        return "accepted"

    def _judge_checkpoint(self, event: Crossing) -> None:
        """The checkpoint rules; raises :class:`InvalidEvent` for a crossing not counted here.

        A registered checkpoint is always counted, between its two countries
        only. An unregistered one is counted if this partition already counts
        it, or counts fewer unregistered ones than its share of the bound.
        """
        known = self.registered(event.border)
        if known is not None:
            mismatch = known.mismatch(event.from_country, event.to_country)
            if mismatch is not None:
                raise InvalidEvent("border", mismatch)
            return
        bound = self.config.unregistered_checkpoints
        if bound is not None and event.border not in self._checkpoints and self._unregistered >= bound:
            raise TooManyCheckpoints(
                "border",
                f"{event.border} is not a registered checkpoint, and this partition already counts {self._unregistered} unregistered "
                "ones (its share of BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS): register it, or raise the bound, to count it",
            )

    def registered(self, border: str) -> Checkpoint | None:
        """``border``'s registration as this partition's input stands: changed at run time, or shipped, or None."""
        return self._registrations.get(border) or self.config.checkpoints.get(border)

    @property
    def registrations(self) -> Mapping[str, Checkpoint]:
        """The checkpoints registered or changed at run time in this partition's input."""
        return self._registrations

    def _judge_registration(self, registration: Registration) -> None:
        """Raises :class:`TooManyCheckpoints` for a new checkpoint past this partition's share of the bound.

        Changing a checkpoint that is registered already is always allowed, so
        registrations add at most the bound to the checkpoints counted.
        """
        bound = self.config.unregistered_checkpoints
        if bound is not None and self.registered(registration.border) is None and len(self._registrations) >= bound:
            raise TooManyCheckpoints(
                "border",
                f"{registration.border} is not registered, and this partition already holds {len(self._registrations)} run-time "
                "registrations (its share of BORDERFLOW_MAX_UNREGISTERED_CHECKPOINTS): raise the bound to register more",
            )

    def _register(self, registration: Registration) -> None:
        """Apply a registration unless the checkpoint's current one is later."""
        border = registration.border
        current = self.registered(border)
        if current is not None and not current.superseded_by(registration):
            return
        self._registrations[border] = Checkpoint.of(registration)
        self._dirty_registrations.add(border)
        if border in self._checkpoints:
            if self._checkpoints[border] is None:
                self._unregistered -= 1
            self._checkpoints[border] = registration.countries

    def _admit(self, border: str) -> None:
        """``border`` is counted here from now on (its series exists)."""
        if border in self._checkpoints:
            return
        known = self.registered(border)
        self._checkpoints[border] = None if known is None else known.countries
        if known is None:
            self._unregistered += 1

    def _record_id(self, event: Event, offset: int) -> None:
        self.dedup.record(event.event_id, offset, event.event_time)

    def _keep_statement(self, event: Statement, offset: int) -> None:
        record = to_json(event) | {"offset": offset, "partition": self.partition}
        self.statements[event.event_id] = record
        self._dirty_statements.add(event.event_id)

    def _count(self, event: Event, offset: int) -> None:
        if isinstance(event, Crossing):
            self._admit(event.border)
        elif not isinstance(event, Departure):  # pragma: no cover - statements are not counted
            return
        bucket = bucket_start(event.event_time, self.config.bucket_seconds)
        counts_in_total = in_total(event.event_time, self.config.since)
        for series_id in zip(SERIES_CODES[type(event)], series_names(event), strict=True):
            series = self.series.get(series_id)
            if series is None:
                series = self.series[series_id] = Series()
            if offset <= series.offset:
                continue  # applied before a crash cut the last flush short
            series.buckets[bucket] = series.buckets.get(bucket, 0) + event.count
            if counts_in_total:
                series.total += event.count
            self._dirty_series.add(series_id)  # its offset is set when flushed

    def _advance(self, event_time: float) -> None:
        self.progress.stream_time = advanced(self.progress.stream_time, event_time)

    # -- end of batch ----------------------------------------------------------
    def close_windows(self, effects: Effects) -> None:
        """Emit windows that stream time has closed; drop state past retention."""
        stream_time = self.progress.stream_time
        if stream_time is None or self.event_type == "statement":
            return
        through = closed_through(stream_time, self.config.grace)
        after = self.progress.closed_through
        if through > after:
            closing = [spec for spec in self.config.windows if spec.any_end_between(after, through)]
            bucket_seconds, results = self.config.bucket_seconds, effects.results
            for spec in closing:  # usually none: stream time moves by less than a step per batch
                for (series_code, name), series in self.series.items():
                    for start, count in closing_windows(series.buckets, spec, bucket_seconds, after, through):
                        results.append(WindowResult(series_code, name, spec.name, start, start + spec.size, count))
            self.progress.closed_through = through
            self._dirty_progress = True
        self._expire(stream_time)

    def _expire(self, stream_time: float) -> None:
        self.dedup.expire(stream_time - self.config.dedup_horizon)
        cutoff = retention_cutoff(stream_time, self.config.retention, self.config.bucket_seconds)
        if cutoff <= self._swept_through:
            return
        bucket_seconds = self.config.bucket_seconds
        since, self._swept_through = self._swept_through, cutoff
        for series_id, series in self.series.items():
            buckets = series.buckets
            if math.isinf(since) or (cutoff - since) // bucket_seconds > len(buckets):
                old = [b for b in buckets if b + bucket_seconds <= cutoff]
            else:  # the buckets between the last sweep and this one: later buckets were never written before
                old = [b for b in range(int(since), cutoff, bucket_seconds) if b in buckets]
            for bucket in old:
                del buckets[bucket]
            if old:
                self._dirty_series.add(series_id)

    def flush(self) -> list[tuple[bytes, bytes | None]]:
        """Records changed since the last flush, in the order they must be written.

        The progress record comes last: see the module doc.
        """
        topic, partition = self.topic, self.partition
        state: list[tuple[bytes, bytes | None]] = [
            (dedup_key(topic, partition, f"{segment:020d}"), value) for segment, value in self.dedup.flush()
        ]
        applied_through = self.progress.offset
        for series_code, name in self._dirty_series:
            series = self.series[(series_code, name)]
            series.offset = max(series.offset, applied_through)  # every event up to there that touches it is in it
            state.append((series_key(topic, partition, series_code, name), series.encode()))
        state.extend(
            (statement_key(topic, partition, event_id), orjson.dumps(self.statements[event_id])) for event_id in self._dirty_statements
        )
        state.extend((checkpoint_key(topic, partition, slug), self._registrations[slug].encode()) for slug in self._dirty_registrations)
        if self._dirty_progress:
            state.append((progress_key(topic, partition), self.progress.encode()))
        self._dirty_series.clear()
        self._dirty_statements.clear()
        self._dirty_registrations.clear()
        self._dirty_progress = False
        return state

    def snapshot(self) -> dict[str, Any]:
        """What the counts of this partition are, as JSON: for comparing a replay with the live state.

        Buckets past retention are left out whether or not this batch's sweep
        has dropped them yet, so a snapshot taken mid-batch reads the same as
        one taken at the end of a batch.
        """
        stream_time = self.progress.stream_time
        cutoff = -math.inf if stream_time is None else retention_cutoff(stream_time, self.config.retention, self.config.bucket_seconds)
        return {
            "offset": self.progress.offset,
            "stream_time": stream_time,
            "series": {
                f"{series_code}:{key}": {
                    "buckets": {str(b): c for b, c in sorted(series.buckets.items()) if c and b + self.config.bucket_seconds > cutoff},
                    "total": series.total,
                }
                for (series_code, key), series in sorted(self.series.items())
            },
            "statements": {
                event_id: {k: v for k, v in record.items() if k != "offset"} for event_id, record in sorted(self.statements.items())
            },
            "checkpoints": {slug: orjson.loads(point.encode()) for slug, point in sorted(self._registrations.items())},
        }

    @property
    def dedup_size(self) -> int:
        return len(self.dedup)

    @property
    def record_count(self) -> int:
        """How many state records this partition holds: series, statements, registrations, dedup segments and its progress."""
        return len(self.series) + len(self.statements) + len(self._registrations) + self.dedup.segment_count + 1


class TooManyCheckpoints(InvalidEvent):
    """A crossing at one unregistered checkpoint more than the partition's share of the bound."""


def _dead_letter_reason(error: InvalidEvent) -> str:
    if isinstance(error, TooManyCheckpoints):
        return "too-many-checkpoints"
    if isinstance(error, TooFarAhead):
        return "future"
    if isinstance(error, OutOfRange):
        return "out-of-range"
    return f"invalid:{error.field}"


def merge_partials(partials: Iterable[Mapping[str, Any]]) -> tuple[dict[int, int], int]:
    """Sum (buckets, total) partials given as JSON-friendly dicts."""
    merged: dict[int, int] = {}
    total = 0
    for partial in partials:
        total += partial["total"]
        for bucket, count in partial["buckets"].items():
            merged[int(bucket)] = merged.get(int(bucket), 0) + count
    return merged, total

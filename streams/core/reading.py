"""What is read of a partition's state: the read model the web side, the metrics and the console use.

A :class:`PartitionReading` answers for one :class:`~streams.core.state.PartitionState`
without exposing how the state keeps its series, statements and progress, so
that the processing can change how it holds them without the readers
following. Nothing here copies: a reading is taken on the event loop and
read at once, or (the gauges) its series are captured by reference and their
buckets read with one ``dict.get`` each (see ``streams/engine/metrics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from events.checkpoints import Checkpoint
from streams.core.records import Series
from streams.core.state import PartitionState

#: a series' code and key: ``(SeriesCode.BORDER, "upper-lars")``
SeriesId = tuple[str, str]


class Partial(NamedTuple):
    """One partition's part of a series: counts per base bucket, the total since BORDERFLOW_SINCE, the partition's stream time."""

    buckets: Mapping[int, int]
    total: int
    stream_time: float | None


class PartitionReading:
    """One partition's state as its readers see it."""

    __slots__ = ("_state",)

    def __init__(self, state: PartitionState) -> None:
        self._state = state

    @property
    def topic(self) -> str:
        return self._state.topic

    @property
    def partition(self) -> int:
        return self._state.partition

    @property
    def offset(self) -> int:
        """The last input offset applied (-1 for none)."""
        return self._state.progress.offset

    @property
    def stream_time(self) -> float | None:
        """The largest event time applied, None before the first."""
        return self._state.progress.stream_time

    def keys(self) -> Iterator[SeriesId]:
        """The series this partition has counts for."""
        return iter(self._state.series)

    def partial(self, series_code: str, key: str) -> Partial | None:
        """This partition's part of one series, None if it counted none of it."""
        series = self._state.series.get((series_code, key))
        return None if series is None else Partial(series.buckets, series.total, self._state.progress.stream_time)

    def series(self) -> tuple[tuple[SeriesId, Series], ...]:
        """Every series by reference, for the gauges: their buckets are read later, one ``dict.get`` at a time."""
        return tuple(self._state.series.items())

    def statements(self) -> Iterable[Mapping[str, Any]]:
        """The statements this partition keeps, as published (with their offset and partition)."""
        return self._state.statements.values()

    @property
    def registrations(self) -> Mapping[str, Checkpoint]:
        """The checkpoints registered or changed at run time in this partition's input."""
        return self._state.registrations

    def registered(self, border: str) -> Checkpoint | None:
        """``border``'s registration as this partition's input stands (run time, or shipped), or None."""
        return self._state.registered(border)

    @property
    def record_count(self) -> int:
        """How many state records the partition holds (its share of the table)."""
        return self._state.record_count

    @property
    def dedup_size(self) -> int:
        """How many event ids its dedup index holds."""
        return self._state.dedup_size

    def has_seen(self, event_id: str) -> bool:
        """Whether the partition's dedup index holds ``event_id`` (it was counted, within the dedup horizon)."""
        return event_id in self._state.dedup


def read(states: Iterable[PartitionState]) -> list[PartitionReading]:
    """A reading of each state."""
    return [PartitionReading(state) for state in states]

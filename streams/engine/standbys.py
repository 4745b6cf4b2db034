"""The standby replicas this worker keeps of partitions other workers own, offered while they are shown current."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import faust
from faust.types import TP, TableT

from streams.core.ownership import standby_lag
from streams.core.reading import PartitionReading, read
from streams.core.state import PartitionState
from streams.engine.partitions import OwnedPartitions
from streams.engine.seam import changelog_marks, partition_rows
from streams.kafka.topics import Topics

log = logging.getLogger(__name__)
#: seconds a standby replica's states, once read from the store, are answered from before being read again
STANDBY_REFRESH = 1.0
#: seconds the changelog ends and committed input offsets that show a standby replica current are used before asking again
STANDBY_MARKS_TTL = 1.0
#: seconds to wait for them; without them no standby replica is offered
STANDBY_MARKS_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Standby:
    """The states of one partition as this worker's standby replica of it has them."""

    partition: int
    #: the last changelog offset applied to the replica when the states were read
    offset: int
    read_at: float
    states: list[PartitionState]

    def readings(self) -> list[PartitionReading]:
        return read(self.states)


@dataclass(frozen=True, slots=True)
class _StandbyMarks:
    """What a standby replica is measured against, as the broker said at ``at``."""

    at: float
    #: changelog partition -> the offset its next record will get
    ends: dict[int, int]
    #: (input topic, partition) -> the owner's committed offset (the next to read), None if none
    committed: dict[tuple[str, int], int | None]


class StandbyReplicas:
    def __init__(self, app: faust.App, topics: Topics, state_table: TableT[bytes, bytes], partitions: OwnedPartitions) -> None:
        self._app = app
        self._topics = topics
        self._state_table = state_table
        self._changelog_topic = state_table.changelog_topic.get_topic_name()
        #: whether this worker may answer at all, and how states are built from the store's rows
        self._partitions = partitions
        self._standbys: dict[int, Standby] = {}
        self._marks: _StandbyMarks | None = None
        self._marks_lock = asyncio.Lock()

    async def current(self) -> list[tuple[Standby, int]]:
        """Each standby replica this worker keeps that is shown current, with how many changelog records it lags.

        A replica counts only when its lag is measured against the changelog's
        end offset as the broker reports it, and its state has applied
        everything its partition's owner committed (:func:`standby_lag`):
        one that cannot be shown so is left out, and its partition stays
        missing rather than answered short. Both marks are asked of the broker
        at most once every :data:`STANDBY_MARKS_TTL` (again at once when a
        replica has passed them). A replica's states are read from the store
        again only when it has applied more records and
        :data:`STANDBY_REFRESH` has passed since the last read, so a stream of
        queries during a restart costs one read a second per partition.
        """
        if self._partitions.unavailable() is not None:
            return []
        held = sorted(tp.partition for tp in self._app.assignor.assigned_standbys() if tp.topic == self._changelog_topic)
        for partition in [p for p in self._standbys if p not in held]:
            del self._standbys[partition]
        if not held:
            return []
        marks = await self._standby_marks(held, fresh=False)
        if marks is None or self._partitions.unavailable() is not None:
            return []
        measured = {p: self._measured_standby(p, marks) for p in held}
        if any(applied is not None and applied >= marks.ends.get(p, 0) for p, (_, _, applied) in measured.items()):
            marks = await self._standby_marks(held, fresh=True)  # the replica is ahead of the ends last asked for
            if marks is None or self._partitions.unavailable() is not None:
                return []
            measured = {p: self._measured_standby(p, marks) for p in held}
        return [(replica, lag) for replica, lag, _ in measured.values() if replica is not None and lag is not None]

    async def _standby_marks(self, partitions: list[int], *, fresh: bool) -> _StandbyMarks | None:
        """The changelog ends and committed input offsets of ``partitions``, at most :data:`STANDBY_MARKS_TTL` old.

        None when the broker did not tell them in time.
        """
        async with self._marks_lock:
            now = asyncio.get_running_loop().time()
            marks = self._marks
            if marks is None or fresh or now - marks.at > STANDBY_MARKS_TTL or not set(partitions) <= marks.ends.keys():
                changelog = [TP(self._changelog_topic, p) for p in partitions]
                inputs = [TP(topic, p) for topic in self._topics.inputs for p in partitions]
                try:
                    ends, committed = await asyncio.wait_for(changelog_marks(self._app.consumer, changelog, inputs), STANDBY_MARKS_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - any failure only means no replica can be shown current
                    log.warning("standby replicas not offered: the changelog ends or committed offsets could not be read (%r)", exc)
                    return None
                marks = self._marks = _StandbyMarks(
                    now,
                    {tp.partition: end for tp, end in ends.items() if end is not None},
                    {(tp.topic, tp.partition): offset for tp, offset in committed.items()},
                )
            return marks

    def _measured_standby(self, partition: int, marks: _StandbyMarks) -> tuple[Standby | None, int | None, int | None]:
        """The replica of ``partition`` as last read, its lag by ``marks`` (None: not shown current), and its store's offset."""
        applied = self._state_table.persisted_offset(TP(self._changelog_topic, partition))
        if applied is None:
            return None, None, None
        now = asyncio.get_running_loop().time()
        cached = self._standbys.get(partition)
        if cached is None or (cached.offset != applied and now - cached.read_at >= STANDBY_REFRESH):
            cached = self._standbys[partition] = Standby(partition, applied, now, self._read_standby(partition))
        lag = self._standby_lag(cached, marks)
        if lag is None and cached.offset != applied:  # the states last read may be what fell short: read them again first
            cached = self._standbys[partition] = Standby(partition, applied, now, self._read_standby(partition))
            lag = self._standby_lag(cached, marks)
        return cached, lag, applied

    def _standby_lag(self, replica: Standby, marks: _StandbyMarks) -> int | None:
        return standby_lag(
            replica.offset,
            marks.ends.get(replica.partition),
            {state.topic: state.progress.offset for state in replica.states},
            {topic: marks.committed.get((topic, replica.partition)) for topic in self._topics.inputs},
        )

    def _read_standby(self, partition: int) -> list[PartitionState]:
        tps = [(topic, partition) for topic in self._topics.inputs]
        return list(self._partitions.states_from(tps, partition_rows(self._state_table, partition)).values())

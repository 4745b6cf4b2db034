"""The input partitions this worker owns, and their states as it holds them in memory.

A partition's state is loaded from the local store the first time it is
needed, and kept in memory until the partition is revoked, the worker stops
owning it, or a failed checkpoint makes memory possibly ahead of the store.
What a batch changed is written back to the store here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import faust
from faust.types import TableT

from streams.core.config import CoreConfig
from streams.core.reading import PartitionReading, read
from streams.core.records import key_prefix, state_prefix
from streams.core.state import PartitionState
from streams.engine.membership import GroupMembership, Ownership
from streams.engine.seam import as_current_event
from streams.kafka.topics import Topics


class NotReady(RuntimeError):
    """The worker is recovering or rebalancing: its tables may be incomplete, so nothing is read from them."""


class OwnedPartitions:
    def __init__(
        self,
        app: faust.App,
        config: CoreConfig,
        topics: Topics,
        state_table: TableT[bytes, bytes],
        ready: Callable[[], bool],
        membership: GroupMembership | None,
    ) -> None:
        self._app = app
        self._config = config
        self._topics = topics
        self._state_table = state_table
        self._ready = ready
        #: whether what this worker owns may be presented as current (None: only readiness counts)
        self._membership = membership
        self._states: dict[tuple[str, int], PartitionState] = {}

    def owned(self) -> set[int]:
        return {tp.partition for tp in self._app.assignor.assigned_actives() if tp.topic in self._topics.inputs}

    def unavailable(self) -> str | None:
        """Why this worker's state must not be read as current now, or None."""
        if self._membership is not None:
            return self._membership.unavailable()
        return None if self._ready() else "recovering its state or rebalancing"

    def ready(self) -> bool:
        """Recovered and not rebalancing, whatever the group membership says: batches may be applied."""
        return self._ready()

    def ownership(self) -> Ownership:
        """The partitions this worker owns, the group generation it owns them in, and whether it can serve them."""
        generation = self._membership.generation if self._membership is not None else 0
        return Ownership(generation, frozenset(self.owned()), self.unavailable())

    def revoke(self, partitions: set[int]) -> None:
        for tp in [tp for tp in self._states if tp[1] in partitions]:
            del self._states[tp]

    def forget_all(self) -> None:
        """Drop every cached state: what memory holds may be ahead of the store."""
        self._states.clear()

    def local_states(self) -> list[PartitionState]:
        """States of the partitions this worker owns, loading any not yet loaded.

        Raises :class:`NotReady` while the tables are being recovered (a state
        loaded then would be cached incomplete and counted on from there), and
        while this worker may no longer be a member of its group.
        """
        reason = self.unavailable()
        if reason is not None:
            raise NotReady(f"this worker is {reason}; retry shortly")
        owned = self.owned()
        for tp in [tp for tp in self._states if tp[1] not in owned]:
            del self._states[tp]
        missing = [(t, p) for t in self._topics.inputs for p in owned if (t, p) not in self._states]
        if missing:
            self._states.update(self.states_from(missing, self._state_table.data.items()))
        return [s for s in self._states.values() if s.partition in owned]

    def readings(self) -> list[PartitionReading]:
        """What the web side, the metrics and the console read of :meth:`local_states`; raises :class:`NotReady` the same."""
        return read(self.local_states())

    def offsets(self) -> dict[str, int]:
        """``topic|partition -> last applied offset`` for the partitions this worker owns."""
        return {f"{state.topic}|{state.partition}": state.progress.offset for state in self.local_states()}

    def write(self, writes: Iterable[tuple[bytes, bytes | None]], context: faust.types.EventT) -> None:
        """Write a flush's state records to the local store, a ``None`` value deleting its key.

        ``context`` is Faust's current event for the partition: the store
        picks the partition's database from it.
        """
        store = self._state_table.data
        with as_current_event(context):
            for key, value in writes:
                if value is not None:
                    store[key] = value
                elif key in store:
                    del store[key]

    def state_for(self, topic: str, partition: int) -> PartitionState:
        state = self._states.get((topic, partition))
        if state is None:
            self._states.update(self.states_from([(topic, partition)], self._state_table.data.items()))
            state = self._states[(topic, partition)]
        return state

    def states_from(
        self, tps: Sequence[tuple[str, int]], table_rows: Iterable[tuple[bytes, bytes]]
    ) -> dict[tuple[str, int], PartitionState]:
        """The states of ``tps`` built from the rows of theirs among ``table_rows``."""
        prefixes = {prefix: tp for tp in tps for prefix in state_prefix(*tp)}
        rows: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in table_rows:
            tp = prefixes.get(key_prefix(key))
            if tp is not None:
                rows[tp].append((key, value))
        states = {}
        for tp in tps:
            state = PartitionState(tp[0], tp[1], self._topics.type_of(tp[0]), self._config)
            state.load(rows[tp])
            states[tp] = state
        return states

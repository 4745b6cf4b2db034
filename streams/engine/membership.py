"""Whether this worker may present its partitions as current: a ready member of its consumer group, still in touch with it.

A worker cut off from Kafka cannot learn that the group has moved on: its
consumer keeps the old generation and partitions until it reaches a broker
again. What it can know is when the group coordinator last answered one of
its heartbeats. The coordinator evicts a member one session timeout after
the last heartbeat it heard, which it cannot have heard before that
heartbeat was sent; so once a session timeout has passed since the send
time of the last answered heartbeat, the worker may have been evicted and
its partitions given to another, and it stops serving them. Until the group
has reassigned them no one serves them: answers then fail, naming them,
rather than count them twice (:mod:`streams.core.ownership`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import faust

from streams.engine.seam import watch_heartbeats


@dataclass(frozen=True, slots=True)
class Ownership:
    """What this worker owns now, in which generation, and why it cannot serve it (None: it can)."""

    generation: int
    partitions: frozenset[int]
    unavailable: str | None


def recovery_state(app: faust.App) -> str | None:
    """Why the tables are incomplete now (starting, rebalancing, recovering), or None when they are complete."""
    if app.consumer is None:
        return "starting"
    if app.rebalancing:
        return "rebalancing"
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # TableManager has it, TableManagerT not
    if recovery.in_recovery or not recovery.completed.is_set():
        return "recovering its state"
    return None


class GroupMembership:
    """This worker's standing in its consumer group, from the assignments and heartbeats it has seen."""

    def __init__(self, app: faust.App, session_timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._app = app
        self._session_timeout = session_timeout
        self._clock = clock
        #: when the group last answered: an assignment received, or the send time of an answered heartbeat
        self._last_contact: float | None = None
        watch_heartbeats(self.heard_from_group)

    def heard_from_group(self, at: float) -> None:
        """The group answered a request sent at ``at`` (any thread: one float is written)."""
        if self._last_contact is None or at > self._last_contact:
            self._last_contact = at

    def assigned(self) -> None:
        self.heard_from_group(self._clock())

    def out_of_touch(self) -> str | None:
        """Why this worker may no longer be a member of its group, or None while its session cannot have expired."""
        last = self._last_contact
        if last is None:
            return "not yet a member of its consumer group"
        silent = self._clock() - last
        if silent > self._session_timeout:
            return (
                f"out of touch with its consumer group: no answer from the group coordinator for {silent:.0f} s "
                f"(session timeout {self._session_timeout:g} s), so its partitions may have moved to another worker"
            )
        return None

    def unavailable(self) -> str | None:
        """Why the state here must not be presented as current (None: it may); it reads after "this worker is"."""
        return recovery_state(self._app) or self.out_of_touch()

    @property
    def generation(self) -> int:
        return int(self._app.consumer_generation_id)

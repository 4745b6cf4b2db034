"""Which workers' answers make up a cluster-wide answer: each partition once, from its current owner.

Every worker answers for the partitions it owns, with the consumer group's
generation in which it was given them. A worker cut off from Kafka keeps its
old generation and its old partitions, while the group moves them to another
worker in a newer generation: both then claim them. Counting every answer
would count those partitions twice, and which one wins cannot be decided by
timing. The generation decides it: in one generation each partition has
exactly one owner, so only answers of the newest generation any serving
worker reports are used, and they must cover every partition. Anything else
is an :class:`Incomplete` answer that names the partitions and the reasons,
never a sum that leaves a partition out or counts one twice.

A partition whose owner cannot answer (restarting, recovering) may be read
instead from a standby replica of it that a serving worker of the newest
generation holds (:func:`serving`): the one that lags least, once. Its figure
is the state its changelog had reached there, never ahead of the owner's, and
the answer names the partition, the worker and how many changelog records
it lags, so it is never presented as current. A replica whose lag cannot be
shown (:func:`standby_lag`) is not offered at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StandbyAnswer(Generic[T]):
    """A worker's answer for one partition it keeps a standby replica of."""

    partition: int
    #: changelog records of the partition not yet applied to the replica
    lag: int
    body: T


def standby_lag(
    applied: int | None, changelog_end: int | None, inputs_applied: dict[str, int], inputs_committed: dict[str, int | None]
) -> int | None:
    """How many changelog records a standby replica lags its changelog's end, or None when it cannot be shown current.

    ``applied`` is the last changelog offset the replica's store holds,
    ``changelog_end`` the offset the broker will give the next record.
    ``inputs_applied`` is, per input topic, the last input offset the
    replica's state has applied, and ``inputs_committed`` the offset the
    owner committed (the next to read): an owner commits only what its
    changelog already holds, so a replica that has not applied up to the
    commit misses records it cannot count, whatever its changelog offset
    says. An offset unknown, or beyond the changelog's end, proves nothing.
    """
    if applied is None or changelog_end is None or not 0 <= applied < changelog_end:
        return None
    for topic, committed in inputs_committed.items():
        if committed is not None and committed > 0 and inputs_applied.get(topic, -1) < committed - 1:
            return None
    return changelog_end - 1 - applied


@dataclass(frozen=True, slots=True)
class OwnerAnswer(Generic[T]):
    """One worker's answer for the partitions it owns in ``generation``, and for those it keeps standby replicas of."""

    worker: str
    generation: int
    partitions: frozenset[int]
    body: T | None
    #: why this worker's partitions cannot be counted now (recovering, rebalancing, cut off, did not answer)
    unavailable: str | None = None
    standbys: tuple[StandbyAnswer[T], ...] = ()


@dataclass(frozen=True, slots=True)
class Served(Generic[T]):
    """What makes a cluster-wide answer: the current owners' answers, and standby answers for the partitions they miss."""

    owners: list[OwnerAnswer[T]]
    #: partition -> (worker, its standby answer), for partitions no current owner answered for
    standbys: dict[int, tuple[str, StandbyAnswer[T]]]


class Incomplete(RuntimeError):
    """Some partitions have no current owner that answered: an answer without them would be wrong."""

    def __init__(self, missing: Iterable[int], reasons: dict[str, str]) -> None:
        self.missing = sorted(missing)
        self.reasons = dict(sorted(reasons.items()))
        named = "; ".join(f"{worker}: {why}" for worker, why in self.reasons.items()) or "no worker owns them"
        super().__init__(f"partitions {', '.join(map(str, self.missing))} could not be read from a current owner ({named}); retry shortly")


def current_owners(answers: Iterable[OwnerAnswer[T]], partitions: int) -> list[OwnerAnswer[T]]:
    """The answers to use: those of the newest generation among serving workers, covering partitions ``0..partitions-1`` once.

    Raises :class:`Incomplete` when a partition is not covered by such an
    answer, or is claimed twice within the newest generation.
    """
    return serving(answers, partitions, standbys=False).owners


def serving(answers: Iterable[OwnerAnswer[T]], partitions: int, *, standbys: bool = True) -> Served[T]:
    """The current owners' answers, and with ``standbys`` a standby answer for each partition no current owner answered for.

    Only standby replicas kept by serving workers of the newest generation
    are read, the least lagging one per partition. A partition claimed twice
    is never filled from a standby. Raises :class:`Incomplete` naming the
    partitions still not covered.
    """
    answers = list(answers)
    reasons = {a.worker: a.unavailable for a in answers if a.unavailable is not None}
    serving = [a for a in answers if a.unavailable is None]
    if not serving:
        raise Incomplete(range(partitions), reasons)
    newest = max(a.generation for a in serving)
    chosen = [a for a in serving if a.generation == newest]
    for a in serving:
        if a.generation < newest:
            reasons[a.worker] = f"its partitions are from generation {a.generation}; the group has moved on to generation {newest}"
    claimed: dict[int, str] = {}
    twice: set[int] = set()
    for a in chosen:
        for p in a.partitions:
            if p in claimed:
                twice.add(p)
                reasons[a.worker] = f"claims partition {p} in generation {newest}, as does {claimed[p]}"
            claimed[p] = a.worker
    missing = (set(range(partitions)) - claimed.keys()) | twice
    filled: dict[int, tuple[str, StandbyAnswer[T]]] = {}
    if standbys:
        for p in sorted(missing - twice):
            replicas = [(s.lag, a.worker, s) for a in chosen for s in a.standbys if s.partition == p]
            if replicas:
                _, worker, replica = min(replicas, key=lambda r: (r[0], r[1]))
                filled[p] = (worker, replica)
    missing -= filled.keys()
    if missing:
        raise Incomplete(missing, reasons)
    return Served(chosen, filled)

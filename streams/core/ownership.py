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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OwnerAnswer(Generic[T]):
    """One worker's answer for the partitions it owns in ``generation``."""

    worker: str
    generation: int
    partitions: frozenset[int]
    body: T | None
    #: why this worker's partitions cannot be counted now (recovering, rebalancing, cut off, did not answer)
    unavailable: str | None = None


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
    if missing:
        raise Incomplete(missing, reasons)
    return chosen

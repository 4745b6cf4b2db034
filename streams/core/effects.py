"""What applying a batch produces besides state: outcomes, dead letters, final windows, forwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

#: what became of a message: ``skipped``, applied before (a redelivery); ``forwarded``, valid but outside its
#: home partition, so judged there (see :mod:`events.partitioning`)
Outcome = Literal["accepted", "duplicate", "late", "invalid", "skipped", "forwarded"]
#: the outcomes a message is judged to, once, where it is judged: at home, the first time it is applied
JUDGED_OUTCOMES: Final[tuple[Outcome, ...]] = ("accepted", "duplicate", "late", "invalid")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    offset: int
    value: bytes | None


@dataclass(slots=True)  # not frozen: frozen dataclasses are slower to build, and a batch can close many windows
class WindowResult:
    """A window's final count from one input partition (partials sum to the total)."""

    series_code: str
    key: str
    window: str
    start: int
    end: int
    count: int


@dataclass(slots=True)
class Effects:
    """What a batch produced, besides state: dead letters, final windows, outcomes."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    results: list[WindowResult] = field(default_factory=list)
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    #: (offset, home partition) of the messages to send to their home partition, in offset order
    forwards: list[tuple[int, int]] = field(default_factory=list)

    def count(self, outcome: Outcome) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

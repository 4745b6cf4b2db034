"""The registered border checkpoints: which two countries each joins, and its display name.

A list ships with the project (``events/data/checkpoints.json``); operators
register more, or change one, at run time with a ``checkpoint`` message on
the crossings topic (:class:`events.model.Registration`), which each
partition applies in its input order. A crossing at a registered checkpoint
must go between its two countries, either way; any other checkpoint is
unregistered, still counted, but only up to a bound per deployment
(``streams/core/state.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType

import orjson

from events.model import Registration


@dataclass(frozen=True, slots=True)
class Checkpoint:
    slug: str
    countries: frozenset[str]
    name: str
    #: when it was registered at run time; None for one that ships with the project
    registered_at: float | None = None

    @classmethod
    def of(cls, registration: Registration) -> Checkpoint:
        return cls(registration.border, registration.countries, registration.name, registration.registered_at)

    def superseded_by(self, registration: Registration) -> bool:
        """Whether ``registration`` holds over this one: it is not older (a shipped checkpoint is older than any)."""
        return self.registered_at is None or registration.registered_at >= self.registered_at

    def encode(self) -> bytes:
        return orjson.dumps({"countries": sorted(self.countries), "name": self.name, "registered_at": self.registered_at})

    @classmethod
    def decode(cls, slug: str, data: bytes) -> Checkpoint:
        obj = orjson.loads(data)
        return cls(slug, frozenset(obj["countries"]), obj["name"], obj["registered_at"])

    def mismatch(self, from_country: str, to_country: str) -> str | None:
        """Why a crossing from ``from_country`` to ``to_country`` cannot be at this checkpoint, or None if it can."""
        if {from_country, to_country} == self.countries:
            return None
        return f"{self.slug} ({self.name}) joins {' and '.join(sorted(self.countries))}, not {from_country} and {to_country}"


@cache
def registered() -> Mapping[str, Checkpoint]:
    """Every checkpoint that ships with the project, by slug."""
    data = orjson.loads(files("events").joinpath("data/checkpoints.json").read_bytes())
    out = {}
    for item in data["checkpoints"]:
        out[item["slug"]] = Checkpoint(item["slug"], frozenset(item["countries"]), item["name"])
    return MappingProxyType(out)

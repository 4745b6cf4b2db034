"""The registered border checkpoints: which two countries each joins, and its display name.

The list ships with the project (``events/data/checkpoints.json``), so every
worker and every replay of one version judges the same crossings the same
way. A crossing at a registered checkpoint must go between its two
countries, either way; any other checkpoint is unregistered, still counted,
but only up to a bound per deployment (``streams/core/state.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType

import orjson

from events.validation import InvalidEvent


@dataclass(frozen=True, slots=True)
class Checkpoint:
    slug: str
    countries: frozenset[str]
    name: str

    def mismatch(self, from_country: str, to_country: str) -> str | None:
        """Why a crossing from ``from_country`` to ``to_country`` cannot be at this checkpoint, or None if it can."""
        if {from_country, to_country} == self.countries:
            return None
        return f"{self.slug} ({self.name}) joins {' and '.join(sorted(self.countries))}, not {from_country} and {to_country}"


def check_registered(border: str, from_country: str, to_country: str) -> bool:
    """Whether ``border`` is registered; raises :class:`InvalidEvent` (field ``border``) if it joins other countries."""
    known = registered().get(border)
    if known is None:
        return False
    mismatch = known.mismatch(from_country, to_country)
    if mismatch is not None:
        raise InvalidEvent("border", mismatch)
    return True


@cache
def registered() -> Mapping[str, Checkpoint]:
    """Every registered checkpoint by slug."""
    data = orjson.loads(files("events").joinpath("data/checkpoints.json").read_bytes())
    out = {}
    for item in data["checkpoints"]:
        out[item["slug"]] = Checkpoint(item["slug"], frozenset(item["countries"]), item["name"])
    return MappingProxyType(out)

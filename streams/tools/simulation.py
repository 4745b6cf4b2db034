"""A deterministic simulation of the September 2022 surge (pure: no I/O).

Calibrated to the published figures in ``shared/data`` (about 98,000 entries
into Kazakhstan 21-27 Sept, 40,000 onward departures by 26 Sept, more than
53,000 into Georgia, more than 260,000 exits from Russia by 27 Sept).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from events.times import format_utc, parse_rfc3339

START = datetime(2022, 9, 19, tzinfo=UTC).timestamp()
END = datetime(2022, 9, 29, tzinfo=UTC).timestamp()
ANNOUNCED = datetime(2022, 9, 21, 6, tzinfo=UTC).timestamp()
SURGE_START = datetime(2022, 9, 21, tzinfo=UTC).timestamp()
SURGE_END = datetime(2022, 9, 28, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    border: str
    to_country: str
    #: people in the surge week (21-27 Sept)
    week_total: int
    offset: str


CHECKPOINTS = (
    Checkpoint("upper-lars", "GE", 53_000, "+04:00"),
    Checkpoint("zhaisan", "KZ", 30_000, "+06:00"),
    Checkpoint("karaozek", "KZ", 26_000, "+06:00"),
    Checkpoint("syrym", "KZ", 24_000, "+05:00"),
    Checkpoint("kairak", "KZ", 18_000, "+06:00"),
    Checkpoint("vaalimaa", "FI", 44_000, "+03:00"),
    Checkpoint("nuijamaa", "FI", 22_000, "+03:00"),
    Checkpoint("altanbulag", "MN", 46_000, "+08:00"),
)
ONWARD = (("UZ", 0.55), ("KG", 0.45))
ONWARD_TOTAL = 40_000


def _surge_weight(t: float) -> float:
    """Relative flow at instant t: a quiet baseline, then a ramp after the announcement."""
    if t < ANNOUNCED:
        return 0.08
    days = (t - ANNOUNCED) / 86400
    return 0.08 + min(1.0, days / 1.5) * (1.0 + 0.15 * days)


def _daily_rhythm(t: float) -> float:
    hour = (t % 86400) / 3600
    return 1.0 + 0.6 * math.sin((hour - 6) / 24 * 2 * math.pi)


def _hourly_totals(week_total: int) -> dict[int, float]:
    hours = range(int(START), int(END), 3600)
    weights = {h: _surge_weight(h + 1800) * _daily_rhythm(h + 1800) for h in hours}
    week = sum(w for h, w in weights.items() if SURGE_START <= h < SURGE_END)
    return {h: week_total * w / week for h, w in weights.items()}


def _local(t: float, offset: str) -> str:
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[4:6])
    shifted = datetime.fromtimestamp(t + sign * (hours * 3600 + minutes * 60), tz=UTC)
    return shifted.strftime("%Y-%m-%dT%H:%M:%S") + offset


@dataclass(frozen=True, slots=True)
class SimEvent:
    topic_type: str
    data: bytes
    #: the simulated instant it is published (Unix seconds)
    at: float
    #: the Kafka key the feed uses: the checkpoint for crossings, the country otherwise
    key: bytes
    #: what a feed problem made of it: "", "duplicate", "late", "malformed"
    flaw: str = ""


def simulate(seed: int = 2022, flaws: bool = True) -> Iterator[SimEvent]:
    """Events in publication order: by time, slightly shuffled, with real feeds' flaws."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
    events: list[tuple[float, dict[str, Any]]] = []
    serial = 0
    for point in CHECKPOINTS:
        for hour, expected in _hourly_totals(point.week_total).items():
            people = int(expected) + (1 if rng.random() < expected - int(expected) else 0)
            while people > 0:
                count = min(people, rng.choice((1, 2, 3, 4, 5, 12, 30)))
                people -= count
                t = hour + rng.random() * 3600
                serial += 1
                events.append(
                    (
                        t,
                        {
                            "type": "crossing",
                            "event_id": f"sim-{seed}-c{serial}",
                            "occurred_at": _local(t, point.offset),
                            "border": point.border,
                            "from_country": "RU",
                            "to_country": point.to_country,
                            "count": count,
                            "mode": rng.choice(("car", "car", "bus", "foot")),
                            "source": "simulated border guard feed",
                        },
                    )
                )
    onward = _hourly_totals(int(ONWARD_TOTAL * 7 / 5.25))
    for hour, expected in onward.items():
        if hour < SURGE_START + 86400:
            continue
        people = int(expected)
        while people > 0:
            count = min(people, rng.choice((1, 2, 3, 10)))
            people -= count
            t = hour + rng.random() * 3600
            serial += 1
            dest = "UZ" if rng.random() < ONWARD[0][1] else "KG"
            events.append(
                (
                    t,
                    {
                        "type": "departure",
                        "event_id": f"sim-{seed}-d{serial}",
                        "occurred_at": _local(t, "+06:00"),
                        "country": "KZ",
                        "destination": dest,
                        "count": count,
                        "source": "simulated migration registry",
                    },
                )
            )
    published = sorted(((t + rng.random() * 600, obj) for t, obj in events), key=lambda item: item[0])  # a little out of order
    for at, obj in published:
        key = str(obj.get("border") if obj["type"] == "crossing" else obj["country"]).encode()
        yield SimEvent(obj["type"], orjson.dumps(obj), at, key)
        if not flaws:
            continue
        roll = rng.random()
        if roll < 0.01:
            yield SimEvent(obj["type"], orjson.dumps(obj), at, key, "duplicate")
        elif roll < 0.012:
            t = parse_rfc3339(obj["occurred_at"]).timestamp()
            late = dict(obj, event_id=obj["event_id"] + "-late", occurred_at=format_utc(t - 12 * 3600))
            yield SimEvent(obj["type"], orjson.dumps(late), at, key, "late")
        elif roll < 0.013:
            yield SimEvent(obj["type"], orjson.dumps(dict(obj, count=0, event_id=obj["event_id"] + "-bad")), at, key, "malformed")


def with_statements(events: Iterable[SimEvent], statements: Iterable[bytes]) -> list[SimEvent]:
    """The simulated feeds and the real statements, in order of publication."""
    timeline = list(events)
    for data in statements:
        obj = orjson.loads(data)
        timeline.append(SimEvent("statement", data, parse_rfc3339(obj["issued_at"]).timestamp(), obj["country"].encode()))
    return sorted(timeline, key=lambda event: event.at)

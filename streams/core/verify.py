"""Comparing two snapshots of one partition's counts (pure): what ``replay --verify`` reports.

Every window is a sum of base buckets (and ``all`` is the total), so equal
buckets and totals mean equal windows; a differing bucket is reported as the
base window it is, with both counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from events.times import format_utc
from streams.core.records import SeriesCode

SERIES_LABELS = {
    SeriesCode.BORDER: "border",
    SeriesCode.ENTRIES: "entries into",
    SeriesCode.EXITS: "exits from",
    SeriesCode.DEPARTURES: "departures from",
}


@dataclass(frozen=True, slots=True)
class Difference:
    partition: str  # topic|partition
    what: str
    live: Any
    replay: Any

    def __str__(self) -> str:
        return f"{self.partition}: {self.what}: live {self.live}, replay {self.replay}"


def diff_partition(partition: str, live: Mapping[str, Any], replay: Mapping[str, Any], bucket_seconds: int) -> list[Difference]:
    """Differences between the live and replayed snapshots of one partition at the same offset."""
    out: list[Difference] = []
    if live.get("offset") != replay.get("offset"):
        out.append(Difference(partition, "offset", live.get("offset"), replay.get("offset")))
    if live.get("stream_time") != replay.get("stream_time"):
        out.append(Difference(partition, "stream time", _time(live.get("stream_time")), _time(replay.get("stream_time"))))
    live_series, replay_series = live.get("series", {}), replay.get("series", {})
    for name in sorted(set(live_series) | set(replay_series)):
        one, other = live_series.get(name, {}), replay_series.get(name, {})
        series_code, _, key = name.partition(":")
        label = f"{SERIES_LABELS.get(series_code, series_code)} {key}"
        buckets, replayed = one.get("buckets", {}), other.get("buckets", {})
        for bucket in sorted(set(buckets) | set(replayed), key=int):
            if buckets.get(bucket, 0) != replayed.get(bucket, 0):
                start = int(bucket)
                window = f"[{format_utc(start)}, {format_utc(start + bucket_seconds)})"
                out.append(Difference(partition, f"{label} {window}", buckets.get(bucket, 0), replayed.get(bucket, 0)))
        if one.get("total", 0) != other.get("total", 0):
            out.append(Difference(partition, f"{label} all", one.get("total", 0), other.get("total", 0)))
    live_statements, replay_statements = live.get("statements", {}), replay.get("statements", {})
    for event_id in sorted(set(live_statements) | set(replay_statements)):
        if live_statements.get(event_id) != replay_statements.get(event_id):
            out.append(Difference(partition, f"statement {event_id}", live_statements.get(event_id), replay_statements.get(event_id)))
    live_points, replay_points = live.get("checkpoints", {}), replay.get("checkpoints", {})
    for slug in sorted(set(live_points) | set(replay_points)):
        if live_points.get(slug) != replay_points.get(slug):
            out.append(Difference(partition, f"checkpoint {slug}", live_points.get(slug), replay_points.get(slug)))
    return out


def _time(value: float | None) -> str | None:
    return None if value is None else format_utc(value)

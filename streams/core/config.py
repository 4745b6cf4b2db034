"""What the processing semantics depend on: window sizes, grace, retention, the dedup horizon, bounds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events.checkpoints import Checkpoint, registered
from streams.core.windows import ALL, WindowSpec


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """What the processing semantics depend on (durations in seconds)."""

    bucket_seconds: int = 3600
    #: the tumbling window of one base bucket (BORDERFLOW_BUCKET)
    bucket: WindowSpec = WindowSpec("1h", 3600, 3600)
    #: the rolling window (BORDERFLOW_ROLLING, BORDERFLOW_ROLLING_STEP)
    rolling: WindowSpec = WindowSpec("24h", 86400, 3600)
    grace: int = 6 * 3600
    since: float | None = None
    retention: int = 30 * 86400
    dedup_horizon: int = 7 * 86400
    max_event_bytes: int = 64 * 1024
    #: how far an event's time may be ahead of its reference time (the record's timestamp, capped by the wall clock)
    max_future: int = 6 * 3600
    #: the earliest event time accepted (Unix seconds); an earlier event is out of range
    earliest: float = 0.0
    #: the input topics' partition count, to find each event's home partition; None: every event is home
    partitions: int | None = None
    #: the registered checkpoints: a crossing at one must go between its two countries
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=registered)
    #: unregistered checkpoints one partition counts at most (None: no bound); a crossing at one more is refused
    unregistered_checkpoints: int | None = None
    #: every window family, in this order: the bucket, the rolling window, and ``all`` since BORDERFLOW_SINCE
    windows: tuple[WindowSpec, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", (self.bucket, self.rolling, WindowSpec(ALL, 0, 0)))

    def window(self, name: str) -> WindowSpec:
        for spec in self.windows:
            if spec.name == name:
                return spec
        raise KeyError(name)

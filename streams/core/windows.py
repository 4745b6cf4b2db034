"""Event-time windows, pure: epoch-aligned, half-open ``[start, end)``.

State is kept as counts per *base bucket* (the tumbling size, 1 h by default);
every other window (hopping 24 h with a 1 h step, cumulative ``all``) is a sum
of base buckets. One event therefore touches one cell per series, and a
window's count is derived, never stored twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

ALL = "all"


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window family: ``size`` and ``step`` in seconds (equal for tumbling).

    ``size == 0`` is the cumulative window ``all``.
    """

    name: str
    size: int
    step: int

    @property
    def cumulative(self) -> bool:
        return self.size == 0

    def starts_containing(self, t: float) -> range:
        """Starts of the windows that contain instant ``t``."""
        last = math.floor(t / self.step) * self.step
        first = math.floor((t - self.size) / self.step) * self.step + self.step
        return range(first, last + 1, self.step)

    def starts_ending_between(self, after: float, through: float) -> range:
        """Starts of the windows that end in ``(after, through]`` (``after`` finite; not for the cumulative one)."""
        first = math.floor((after - self.size) / self.step) * self.step + self.step  # the first with start + size > after
        last = math.floor((through - self.size) / self.step) * self.step  # the last with start + size <= through
        return range(first, last + 1, self.step)

    def any_end_between(self, after: float, through: float) -> bool:
        """Whether a window of this family ends in ``(after, through]`` (the cumulative one never ends)."""
        if self.cumulative or through <= after:
            return False
        return math.isinf(after) or bool(self.starts_ending_between(after, through))


def bucket_start(t: float, size: int) -> int:
    """Start of the epoch-aligned bucket of ``size`` seconds holding ``t``."""
    return math.floor(t / size) * size


def validate_specs(specs: Iterable[WindowSpec], bucket_seconds: int) -> None:
    """Every window must be a whole number of base buckets, on base-bucket steps."""
    for spec in specs:
        if spec.cumulative:
            continue
        if spec.size <= 0 or spec.step <= 0 or spec.size % bucket_seconds or spec.step % bucket_seconds:
            raise ValueError(
                f"window {spec.name!r}: size {spec.size}s and step {spec.step}s must be positive multiples of the base bucket "
                f"({bucket_seconds}s)"
            )


def window_counts(buckets: Mapping[int, int], spec: WindowSpec, bucket_seconds: int) -> dict[int, int]:
    """Counts per window start for a hopping/tumbling family, from base buckets."""
    if spec.size == bucket_seconds and spec.step == bucket_seconds:
        return {start: count for start, count in buckets.items() if count}
    out: dict[int, int] = {}
    for bucket, count in buckets.items():
        if not count:
            continue
        # windows [s, s+size) with s <= bucket and bucket+bucket_seconds <= s+size
        for start in spec.starts_containing(bucket):
            out[start] = out.get(start, 0) + count
    return out


def window_count(buckets: Mapping[int, int], start: int, end: int) -> int:
    """Sum of the base buckets whose start lies in ``[start, end)``."""
    if end - start <= 0:
        return 0
    return sum(count for bucket, count in buckets.items() if start <= bucket < end)


def closing_windows(
    buckets: Mapping[int, int],
    spec: WindowSpec,
    bucket_seconds: int,
    after: float,
    through: float,
) -> Iterator[tuple[int, int]]:
    """Non-empty windows whose end lies in ``(after, through]``: (start, count), by start.

    Stream time usually moves by less than a window between batches, so the
    few windows that closed are summed from their own buckets; only a long
    jump (or the first batch) reads every bucket.
    """
    if spec.cumulative or through <= after:
        return
    size, step = spec.size, spec.step
    if not math.isinf(after):
        starts = spec.starts_ending_between(after, through)
        if not starts:
            return
        if len(starts) <= max(len(buckets) * bucket_seconds // step, 4):  # cheaper than expanding every bucket
            get = buckets.get
            first = starts[0]
            count = sum([get(bucket, 0) for bucket in range(first, first + size, bucket_seconds)])
            for start in starts:
                if start == first:
                    pass
                elif step == bucket_seconds:  # slide by one bucket (every window of the defaults)
                    count += get(start + size - bucket_seconds, 0) - get(start - bucket_seconds, 0)
                else:  # slide: add the buckets entering the window, drop those leaving it
                    count += sum([get(b, 0) for b in range(start + size - step, start + size, bucket_seconds)])
                    count -= sum([get(b, 0) for b in range(start - step, start, bucket_seconds)])
                if count:
                    yield start, count
            return
    relevant = {b: c for b, c in buckets.items() if after - size < b + bucket_seconds and b < through}
    for start, count in sorted(window_counts(relevant, spec, bucket_seconds).items()):
        if after < start + size <= through and count:
            yield start, count

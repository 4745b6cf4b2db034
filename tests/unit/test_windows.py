from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from streams.core.windows import WindowSpec, bucket_start, closing_windows, window_count, window_counts

H = 3600
HOUR = WindowSpec("1h", H, H)
DAY = WindowSpec("24h", 24 * H, H)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_event_exactly_on_the_hour_belongs_to_the_window_it_starts() -> None:
    assert bucket_start(ts("2022-09-21T10:00:00+00:00"), H) == ts("2022-09-21T10:00:00+00:00")
    assert bucket_start(ts("2022-09-21T10:59:59.999+00:00"), H) == ts("2022-09-21T10:00:00+00:00")


def test_buckets_align_to_utc_hour_whatever_the_offset() -> None:
    # 12:30 at +05:30 is 07:00Z; 12:29 at +05:30 is 06:59Z
    assert bucket_start(ts("2022-09-21T12:30:00+05:30"), H) == ts("2022-09-21T07:00:00+00:00")
    assert bucket_start(ts("2022-09-21T12:29:00+05:30"), H) == ts("2022-09-21T06:00:00+00:00")


def test_daily_windows_align_to_utc_midnight() -> None:
    t = ts("2022-09-21T23:30:00-04:00")  # 2022-09-22T03:30Z
    assert bucket_start(t, 86400) == datetime(2022, 9, 22, tzinfo=UTC).timestamp()


def test_hopping_window_starts_containing_instant() -> None:
    t = ts("2022-09-21T10:15:00+00:00")
    starts = list(DAY.starts_containing(t))
    assert len(starts) == 24
    assert starts[0] == ts("2022-09-20T11:00:00+00:00")
    assert starts[-1] == ts("2022-09-21T10:00:00+00:00")


def test_rolling_counts_derived_from_hour_buckets() -> None:
    base = int(ts("2022-09-21T00:00:00+00:00"))
    buckets = {base: 5, base + 23 * H: 2, base + 24 * H: 7}
    counts = window_counts(buckets, DAY, H)
    assert counts[base] == 7  # [00:00, 24:00) holds the first two
    assert counts[base + H] == 9  # [01:00, 25:00) holds the last two
    assert window_count(buckets, base, base + 24 * H) == 7


def test_closing_windows_emits_each_window_once_across_watermark_steps() -> None:
    base = 1_000 * H
    buckets = {base: 1, base + H: 2}
    first = list(closing_windows(buckets, HOUR, H, after=0, through=base + H))
    second = list(closing_windows(buckets, HOUR, H, after=base + H, through=base + 5 * H))
    assert first == [(base, 1)]
    assert second == [(base + H, 2)]


@given(
    events=st.lists(st.tuples(st.integers(0, 10 * 86400), st.integers(1, 50)), max_size=60),
    size_hours=st.sampled_from([1, 2, 3, 6, 24]),
    step_hours=st.sampled_from([1, 2, 3]),
)
def test_derived_windows_equal_direct_count(events: list[tuple[int, int]], size_hours: int, step_hours: int) -> None:
    spec = WindowSpec("w", size_hours * H, step_hours * H)
    if spec.size % spec.step:
        return
    buckets: dict[int, int] = {}
    direct: dict[int, int] = {}
    for t, count in events:
        b = bucket_start(t, H)
        buckets[b] = buckets.get(b, 0) + count
        for start in spec.starts_containing(t):
            direct[start] = direct.get(start, 0) + count
    assert window_counts(buckets, spec, H) == direct

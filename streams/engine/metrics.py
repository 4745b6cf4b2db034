"""Prometheus metrics, defined once.

Counters are updated as batches are processed. Gauges for borders and
countries are computed at scrape time from the partitions this worker owns,
so a revoked partition's series disappear with it and ``sum()`` across workers
stays right after any rebalance.

``/metrics`` is served by :class:`Exposition`: the event loop only captures
what the text is made of, and one thread writes the text, so a scrape never
holds up the stream or the other routes however many series there are.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from events.checkpoints import Checkpoint
from events.model import EVENT_TYPES
from streams.core.config import CoreConfig
from streams.core.effects import JUDGED_OUTCOMES, Effects
from streams.core.reading import PartitionReading
from streams.core.records import Series, SeriesCode
from streams.core.windows import WindowSpec, bucket_start

if TYPE_CHECKING:
    from streams.core.queries import StatementView

#: every metric but the state's gauges (:data:`STATE`), which :func:`capture` adds
REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # process_*, python_* (resident memory, CPU, GC)
    REGISTRY.register(_collector)
#: Faust's own engine metrics (faust_*: messages in, rebalances, assignment and commit latency, offsets), through its sensor
FAUST = FaustMetrics.create(REGISTRY, "faust")

EVENTS = Counter("borderflow_events", "Events processed, by type and outcome", ["type", "outcome"], registry=REGISTRY)
FORWARDED = Counter(
    "borderflow_forwarded",
    "Events that arrived outside their home partition and were sent to it, by type",
    ["type"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter("borderflow_dead_letters", "Messages sent to the dead-letter topic, by reason", ["reason"], registry=REGISTRY)
INGEST_LINES = Counter(
    "borderflow_ingest_lines", "Lines received by POST /events, by status (accepted, duplicate, rejected)", ["status"], registry=REGISTRY
)
INGEST_REQUESTS = Counter("borderflow_ingest_requests", "POST /events requests, by HTTP status code", ["code"], registry=REGISTRY)
#: the label values each counter can take, created at 0 so that every panel shows 0 rather than no data and rate() works at once
DEAD_LETTER_REASONS: Final = ("invalid", "late", "future", "out-of-range")
INGEST_STATUSES: Final = ("accepted", "duplicate", "rejected")
INGEST_CODES: Final = ("202", "400", "401", "403", "408", "409", "413", "415", "422", "503")
for _type in EVENT_TYPES:
    FORWARDED.labels(type=_type)
    for _outcome in JUDGED_OUTCOMES:
        EVENTS.labels(type=_type, outcome=_outcome)
for _reason in DEAD_LETTER_REASONS:
    DEAD_LETTERS.labels(reason=_reason)
for _status in INGEST_STATUSES:
    INGEST_LINES.labels(status=_status)
for _code in INGEST_CODES:
    INGEST_REQUESTS.labels(code=_code)


class EngineMonitor(PrometheusMonitor):
    """Faust's Prometheus sensor without its per-message and per-event hooks.

    Those hooks cost several label lookups and clock reads for every message
    (docs/benchmarks.md measures what that took); ``borderflow_events_total``
    counts the same messages once per batch. Rebalances, assignment, commits, sends,
    offsets and HTTP are still measured.
    """

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        return None

    def on_table_del(self, table: Any, key: Any) -> None:
        return None


REBALANCES = Counter("borderflow_rebalances", "Partition assignments this worker received", registry=REGISTRY)
BATCH_SECONDS = Histogram("borderflow_batch_seconds", "Time to process one batch of one partition", registry=REGISTRY)


def observe_batch(event_type: str, effects: Effects) -> None:
    for outcome, n in effects.outcomes.items():
        if outcome in JUDGED_OUTCOMES:  # a forwarded message is counted at home, a skipped one was counted before
            EVENTS.labels(type=event_type, outcome=outcome).inc(n)


def observe_ingest(statuses: Iterable[str]) -> None:
    """Count the lines of a ``POST /events`` body by what each became (accepted, duplicate, rejected)."""
    for status in statuses:
        INGEST_LINES.labels(status=status).inc()


@dataclass(frozen=True, slots=True)
class PartitionCapture:
    """One owned partition as the gauges read it, taken on the event loop."""

    topic: str
    partition: int
    offset: int
    stream_time: float | None
    highwater: int | None
    #: the partition's series when captured; their buckets are read later (see :meth:`StateCollector.families`)
    series: tuple[tuple[tuple[str, str], Series], ...]
    #: a checkpoint's registration as the partition's input stands (one ``dict.get`` each: safe off the loop)
    registered: Callable[[str], Checkpoint | None] = lambda border: None


@dataclass(frozen=True, slots=True)
class StateCapture:
    """What the state's gauges are computed from: taken on the event loop, read in any thread."""

    partitions: tuple[PartitionCapture, ...]
    statements: tuple[StatementView, ...]
    table_sizes: Mapping[str, int]
    ready: bool


_DEFAULT_CONFIG: Final = CoreConfig()


class StateCollector(Collector):
    """Event-time gauges from the owned partitions' state, computed per scrape."""

    def __init__(self) -> None:
        self.attach()

    def attach(
        self,
        *,
        readings: Callable[[], Iterable[PartitionReading]] = lambda: (),
        statements: Callable[[], Iterable[StatementView]] = lambda: (),
        table_sizes: Callable[[], dict[str, int]] = dict,
        bucket: WindowSpec = _DEFAULT_CONFIG.bucket,
        rolling: WindowSpec = _DEFAULT_CONFIG.rolling,
        highwater: Callable[[str, int], int | None] = lambda topic, partition: None,
        ready: Callable[[], bool] = lambda: False,
    ) -> None:
        """Point the gauges at a worker's state (one worker per process).

        The window gauges show the ``bucket`` holding stream time and the
        ``rolling`` window ending there, labelled with their names
        (``BORDERFLOW_BUCKET``, ``BORDERFLOW_ROLLING``), which the dashboards
        and rules select on.
        """
        self._window_names = (bucket.name, rolling.name)
        self._readings = readings
        self._statements = statements
        self._table_sizes = table_sizes
        self._bucket_seconds = bucket.size
        self._rolling = rolling.size
        self._highwater = highwater
        self._ready = ready

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

    def inputs(self) -> list[dict[str, Any]]:
        """Each owned partition's applied offset, lag and stream time (what the lag and stream-time gauges show)."""
        out = []
        for reading in self._readings():
            highwater = self._highwater(reading.topic, reading.partition)
            out.append(
                {
                    "topic": reading.topic,
                    "partition": reading.partition,
                    "offset": reading.offset,
                    "lag": None if highwater is None else max(0, highwater - reading.offset - 1),
                    "stream_time": reading.stream_time,
                }
            )
        return sorted(out, key=lambda item: (item["topic"], item["partition"]))

    def ready(self) -> bool:
        return self._ready()

    def capture(self) -> StateCapture:
        """On the event loop: the owned partitions' progress and series, copied by reference (cheap: no bucket is read)."""
        partitions = tuple(
            PartitionCapture(
                reading.topic,
                reading.partition,
                reading.offset,
                reading.stream_time,
                self._highwater(reading.topic, reading.partition),
                reading.series(),
                reading.registered,
            )
            for reading in self._readings()
        )
        return StateCapture(partitions, tuple(self._statements()), dict(self._table_sizes()), self._ready())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self.families(self.capture())

    def families(self, captured: StateCapture) -> Iterator[GaugeMetricFamily]:
        """The gauges of a capture; safe in a thread while the event loop goes on counting.

        A bucket is read with one ``dict.get`` per bucket of a window, never by
        iterating the live dict the loop adds to, so nothing here can see a
        dict change size. A batch applied meanwhile may show in these buckets
        already: the next scrape has all of it.
        """
        crossings = GaugeMetricFamily(
            "borderflow_crossings", "People crossing a checkpoint in the current event-time window", labels=["border", "window"]
        )
        entries = GaugeMetricFamily(
            "borderflow_country_entries", "Crossings into a country in the current window", labels=["country", "window"]
        )
        departures = GaugeMetricFamily(
            "borderflow_country_departures", "Departures out of a host country in the current window", labels=["country", "window"]
        )
        net = GaugeMetricFamily("borderflow_net_inflow", "Entries minus departures in the current window", labels=["country", "window"])
        stream_time = GaugeMetricFamily(
            "borderflow_stream_time_seconds", "Largest event time seen, per input partition", labels=["topic", "partition"]
        )
        lag = GaugeMetricFamily(
            "borderflow_consumer_lag",
            "Messages in the partition not yet applied (high watermark - next offset)",
            labels=["topic", "partition"],
        )
        info = GaugeMetricFamily(
            "borderflow_checkpoint_info",
            "1 for each checkpoint counted here: its display name, and whether it is registered",
            labels=["border", "name", "registered"],
        )
        sums: dict[tuple[str, str, str], int] = {}
        bucket_seconds = self._bucket_seconds
        for part in captured.partitions:
            for series_code, key in (series_id for series_id, _ in part.series):
                if series_code == SeriesCode.BORDER:
                    known = part.registered(key)
                    info.add_metric([key, key if known is None else known.name, "false" if known is None else "true"], 1.0)
            if part.highwater is not None:
                lag.add_metric([part.topic, str(part.partition)], max(0, part.highwater - part.offset - 1))
            st = part.stream_time
            if st is None:
                continue
            stream_time.add_metric([part.topic, str(part.partition)], st)
            current = bucket_start(st, bucket_seconds)
            end = current + bucket_seconds
            bucket_window, rolling_window = self._window_names
            spans = {bucket_window: range(current, end, bucket_seconds), rolling_window: range(end - self._rolling, end, bucket_seconds)}
            for n, ((series_code, key), series) in enumerate(part.series, 1):
                if n % RENDER_CHUNK == 0:
                    time.sleep(0)  # let the event loop have the GIL (see render)
                get = series.buckets.get
                for window, starts in spans.items():
                    count = sum(get(start, 0) for start in starts)
                    sums[(series_code, key, window)] = sums.get((series_code, key, window), 0) + count
        countries: set[tuple[str, str]] = set()
        for (series_code, key, window), total in sorted(sums.items()):
            if series_code == SeriesCode.BORDER:
                crossings.add_metric([key, window], total)
            elif series_code == SeriesCode.ENTRIES:
                entries.add_metric([key, window], total)
                countries.add((key, window))
            elif series_code == SeriesCode.DEPARTURES:
                departures.add_metric([key, window], total)
                countries.add((key, window))
        for key, window in sorted(countries):
            net.add_metric(
                [key, window], sums.get((SeriesCode.ENTRIES, key, window), 0) - sums.get((SeriesCode.DEPARTURES, key, window), 0)
            )
        yield from (crossings, info, entries, departures, net, stream_time, lag)
        ready = GaugeMetricFamily("borderflow_ready", "1 once the worker has recovered its state and serves, else 0")
        ready.add_metric([], 1.0 if captured.ready else 0.0)
        yield ready

        value = GaugeMetricFamily("borderflow_statement_value", "Figure published in a statement", labels=["country", "metric", "source"])
        observed = GaugeMetricFamily(
            "borderflow_statement_observed", "Figure observed over the statement's period", labels=["country", "metric", "source"]
        )
        ratio = GaugeMetricFamily("borderflow_statement_ratio", "Statement value / observed", labels=["country", "metric", "source"])
        for item in captured.statements:
            labels = [item.country, item.metric, item.source]
            value.add_metric(labels, item.value)
            if item.observed is not None:
                observed.add_metric(labels, item.observed)
            if item.ratio is not None:
                ratio.add_metric(labels, item.ratio)
        yield from (value, observed, ratio)

        keys = GaugeMetricFamily("borderflow_state_keys", "Records held for the partitions this worker owns, per table", labels=["table"])
        for table, size in sorted(captured.table_sizes.items()):
            keys.add_metric([table], size)
        yield keys


STATE = StateCollector()


@dataclass(frozen=True, slots=True)
class Capture:
    """Everything one exposition holds, taken at one moment on the event loop.

    The counters and the state are read in the same step of the loop, so a
    scrape never shows a batch in the counters but not in the gauges.
    """

    families: tuple[Metric, ...]
    state: StateCapture

    def collect(self) -> Iterator[Metric]:
        yield from self.families
        yield from STATE.families(self.state)


def capture() -> Capture:
    """On the event loop: the counters' values (few) and the state's series by reference."""
    return Capture(tuple(REGISTRY.collect()), STATE.capture())


#: samples written between two pauses of the exposition thread
RENDER_CHUNK: Final = 2000


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(captured: Capture) -> bytes:
    """The text exposition of a capture; the costly part of a scrape, for a thread.

    A thread that holds the GIL gives it up only when another asks for it, after
    the switch interval, and the event loop asks again after every system call:
    so the text is written a chunk of samples at a time, the GIL released in
    between, and a request to the loop waits for no more than a chunk.
    """
    parts = []
    for family in captured.collect():
        if family.type != "gauge" or len(family.samples) <= RENDER_CHUNK:
            parts.append(generate_latest(_Families([family])))
        else:  # a gauge's samples are plain lines after its HELP and TYPE
            for first in range(0, len(family.samples), RENDER_CHUNK):
                piece = Metric(family.name, family.documentation, family.type, family.unit)
                piece.samples = family.samples[first : first + RENDER_CHUNK]
                text = generate_latest(_Families([piece]))
                parts.append(text if first == 0 else text.split(b"\n", 2)[2])
                time.sleep(0)
        time.sleep(0)
    return b"".join(parts)


#: a /metrics text is reused for this many times as long as it took to write (Exposition)
REUSE_FACTOR: Final = 9


class Exposition:
    """The ``/metrics`` text, written off the event loop at a bounded cost.

    One thread writes it. Scrapes that arrive while it does wait for that same
    text, and a text is served again for :data:`REUSE_FACTOR` times as long as
    it took to write (at most ``max_reuse`` seconds): the thread, which shares
    the GIL with the event loop, is busy at most a tenth of the time (a third
    for a text that takes longer than ``max_reuse`` / REUSE_FACTOR) whatever the
    number of scrapers, and a small registry is still at most tens of
    milliseconds old.
    """

    def __init__(self, max_reuse: float = 1.0) -> None:
        self.max_reuse = max_reuse
        self._executor: ThreadPoolExecutor | None = None
        self._pending: asyncio.Future[tuple[bytes, float]] | None = None
        self._text = b""
        self._fresh_until = -math.inf

    async def latest(self) -> bytes:
        if time.monotonic() < self._fresh_until:
            return self._text
        if self._pending is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-exposition")
            self._pending = asyncio.get_running_loop().run_in_executor(self._executor, _timed_render, capture())
            self._pending.add_done_callback(self._finished)
        text, _ = await asyncio.shield(self._pending)
        return text

    def _finished(self, pending: asyncio.Future[tuple[bytes, float]]) -> None:
        self._pending = None
        if not pending.cancelled() and pending.exception() is None:
            self._text, took = pending.result()
            self._fresh_until = time.monotonic() + min(self.max_reuse, REUSE_FACTOR * took)


def _timed_render(captured: Capture) -> tuple[bytes, float]:
    started = time.monotonic()
    text = render(captured)
    return text, time.monotonic() - started


def counter_totals() -> dict[str, dict[str, Any]]:
    """This process's counters so far: events by type and outcome, forwarded events by type, dead letters by reason."""
    events: dict[str, dict[str, float]] = {}
    for sample in _samples(EVENTS):
        events.setdefault(sample.labels["type"], {})[sample.labels["outcome"]] = sample.value
    forwarded = {sample.labels["type"]: sample.value for sample in _samples(FORWARDED)}
    dead_letters = {sample.labels["reason"]: sample.value for sample in _samples(DEAD_LETTERS)}
    return {"events": events, "forwarded": forwarded, "dead_letters": dead_letters}


def _samples(counter: Counter) -> Iterator[Any]:
    for family in counter.collect():
        yield from (sample for sample in family.samples if sample.name.endswith("_total"))

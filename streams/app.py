"""The Faust app: topics, tables, agents and the HTTP views, built from Settings."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable
from typing import Any

import aiohttp
import faust
import orjson
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from events.ingest import BodyError, media_type
from events.times import parse_rfc3339
from streams import metrics
from streams.access import AccessPolicy, access_middleware, cluster_headers
from streams.broker.defects import DeadMemberEvictor, group_instance_id
from streams.core.queries import (
    BadParameter,
    StatementView,
    net_inflow_windows,
    observed_series,
    reconcile_all,
    seen_request,
    snapshot_request,
    window_spec,
    windows_of,
)
from streams.core.state import BORDER, DEPARTURES, ENTRIES, PartitionState, merge_partials
from streams.fastpath import BatchChannel, BatchInputs, BorderflowApp, DeclaredTableManager, FetchedBatch, read_bare
from streams.ingest import Ingest
from streams.kafka.topics import STATE_TABLE
from streams.runtime import NotReady, Runtime
from streams.settings import Settings

log = logging.getLogger(__name__)
#: fetched batches waiting for the input agent: enough to keep it busy while the consumer fetches
FETCHED_BATCHES_QUEUED = 4
#: the local store per partition: Faust's defaults (3 x 64 MiB memtables, a 2 GiB block cache) are sized for a
#: store that is read; ours is written every batch and read only on recovery, which reads the changelog anyway
ROCKSDB_OPTIONS = {
    "write_buffer_size": 8 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * 1024 * 1024,
    "block_cache_size": 16 * 1024 * 1024,
    "block_cache_compressed_size": 4 * 1024 * 1024,
}
INTERNAL_PARTIALS = "/internal/partials"
INTERNAL_STATEMENTS = "/internal/statements"
INTERNAL_SEEN = "/internal/seen"
INTERNAL_OFFSETS = "/internal/offsets"
INTERNAL_SNAPSHOT = "/internal/snapshot"


def broker_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """Kafka TLS/SASL settings passed through to every Faust client."""
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> faust.App:
    """The app for ``settings``, whose broker is known (:func:`streams.broker.defects.resolve_broker`)."""
    if settings.broker == "auto" or settings.evict_dead_members is None:
        raise ValueError("create_app needs settings whose broker is resolved: streams.broker.defects.resolve_broker")
    config = settings.core()
    app = BorderflowApp(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=broker_credentials(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir / settings.app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        table_standby_replicas=settings.standby_replicas,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        canonical_url=settings.canonical_url,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout.total_seconds(),
        broker_session_timeout=settings.session_timeout.total_seconds(),
        consumer_group_instance_id=group_instance_id(settings),
        broker_heartbeat_interval=min(3.0, settings.session_timeout.total_seconds() / 3),
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        # batches, not single messages, through the consumer and the producer
        stream_buffer_maxsize=max(4096, settings.batch_size * 4),
        broker_max_poll_records=settings.batch_size * 4,  # a fetch from each of several partitions
        consumer_max_fetch_size=4 * 1024 * 1024,  # per partition and fetch: fewer round trips for the consumer thread
        producer_linger_ms=5,
        producer_max_batch_size=1024 * 1024,
        producer_acks=-1,
        producer_compression_type=settings.compression_type,
        web_in_thread=False,
        # Faust's own routes serve raw table contents and topology to anyone: off
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        loghandlers=[],
        TableManager=DeclaredTableManager,
    )
    state = app.Table(STATE_TABLE, key_type=bytes, value_type=bytes, partitions=settings.partitions, options=ROCKSDB_OPTIONS)
    runtime = Runtime(app, config, settings.topics, state, lambda: ready(app), forward=settings.forward)
    app.borderflow_runtime = runtime  # type: ignore[attr-defined]
    app.output = runtime.output

    def make_agent(topic_name: str) -> None:
        topic = app.topic(topic_name, key_type=bytes, value_type=bytes, partitions=settings.partitions)

        async def agent(stream: faust.StreamT[bytes]) -> None:
            async for events in stream.take_events(settings.batch_size, within=settings.batch_within):  # type: ignore[attr-defined]  # missing from StreamT
                with metrics.BATCH_SECONDS.time():
                    await runtime.process_batch(topic_name, events)

        agent.__name__ = f"process_{topic_name}".replace("-", "_")
        agent.__qualname__ = agent.__name__
        app.agent(topic, name=f"borderflow.{topic_name}")(agent)

    def make_batch_agent(topic_names: list[str]) -> None:
        """One agent for every input topic, fed whole fetched batches by the consumer (streams/fastpath.py)."""
        for topic_name in topic_names:  # subscribed, so the assignor co-partitions the table with them
            app.topics.add(app.topic(topic_name, key_type=bytes, value_type=bytes, partitions=settings.partitions, acks=True))
        batches = BatchChannel(app, maxsize=FETCHED_BATCHES_QUEUED)

        async def process_input(stream: faust.StreamT[FetchedBatch]) -> None:
            async for batch in stream:  # backpressure: DirectOutput waits when the producer's batches are full
                with metrics.BATCH_SECONDS.time():
                    await runtime.process_fetched(batch)

        app.agent(batches, name="borderflow.inputs")(process_input)
        app.batch_inputs = BatchInputs(topic_names, batches.put, runtime.busy)  # type: ignore[arg-type]  # a channel carries any value
        read_bare(topic_names)

    if settings.fast_path:
        make_batch_agent(list(settings.topics.inputs))
    else:
        for topic_name in settings.topics.inputs:
            make_agent(topic_name)

    cluster = Cluster(app, runtime, cluster_headers(settings))
    #: this worker's statements with cluster-wide observed figures, for the gauges
    statement_views: list[StatementView] = []

    app.monitor = metrics.EngineMonitor(metrics=metrics.FAUST)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust sends (sender, assigned)
    async def _on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        metrics.REBALANCES.inc()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust sends (sender, revoked)
    async def _on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        runtime.on_revoked({tp.partition for tp in revoked})
        statement_views.clear()

    @app.timer(5.0)
    async def _refresh_statement_views() -> None:
        try:
            fresh = await cluster.statements(None, owned_only=True)
        except Exception as exc:  # noqa: BLE001 - a peer may be rebalancing; keep the last figures
            log.info("statement refresh failed: %r", exc)
            return
        statement_views[:] = [StatementView(item) for item in fresh]

    if settings.evict_dead_members:
        evictor = DeadMemberEvictor(settings, str(app.conf.canonical_url).rstrip("/"))

        @app.on_before_shutdown.connect  # type: ignore[arg-type]  # Faust sends (sender)
        async def _leave_group(sender: Any, **_: Any) -> None:
            try:
                left = await evictor.leave()
                log.info("left group %s as %s", settings.app_id, left)
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                log.warning("could not leave the group on shutdown: %r", exc)

        @app.timer(max(1.0, settings.session_timeout.total_seconds() / 2))
        async def _evict_dead_members() -> None:
            try:
                await evictor.sweep()
            except Exception as exc:  # noqa: BLE001 - best effort; the next sweep retries
                log.info("dead member sweep failed: %r", exc)

    ingest = Ingest(settings, cluster.seen)
    if ingest.refusal is not None:
        log.error("%s", ingest.refusal)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # Faust sends (sender)
    async def _close_ingest(sender: Any, **_: Any) -> None:
        await ingest.close()

    _install_views(app, settings, runtime, cluster)
    _install_ingest(app, runtime, ingest)
    _install_replay_views(app, runtime, cluster)
    access = AccessPolicy(settings)
    if access.refusal is not None:
        log.error("%s", access.refusal)
    app.web.web_app.middlewares.append(access_middleware(access))  # type: ignore[attr-defined]  # the aiohttp driver's

    def highwater(topic: str, partition: int) -> int | None:
        consumer = app.consumer
        try:
            return consumer.highwater(TP(topic, partition)) if consumer is not None else None
        except Exception:  # noqa: BLE001 - not assigned yet, or the consumer is restarting
            return None

    def owned_states() -> list[PartitionState]:
        """For the gauges: nothing while recovering (a gauge is better absent than wrong)."""
        try:
            return runtime.local_states()
        except NotReady:
            return []

    metrics.STATE.attach(
        owned_states,
        lambda: statement_views,
        # counted from memory: len() of the RocksDB store would walk every key on every scrape
        lambda: {STATE_TABLE: sum(s.record_count for s in owned_states()), "dedup_ids": sum(s.dedup_size for s in owned_states())},
        config.base,
        config.windows[1].size,
        highwater,
        lambda: ready(app),
    )
    return app


def _local_partials(states: Iterable[PartitionState], series: Iterable[tuple[str, str]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    states = list(states)
    for kind, key in series:
        parts = []
        for state in states:
            one = state.series.get((kind, key))
            if one is not None:
                parts.append({"buckets": one.buckets, "total": one.total, "stream_time": state.progress.stream_time})
        out[f"{kind}:{key}"] = parts
    return out


def local_seen(states: Iterable[PartitionState], ids_by_topic: dict[str, list[str]]) -> set[str]:
    found = set()
    for state in states:
        for event_id in ids_by_topic.get(state.topic, ()):
            if event_id in state.dedup:
                found.add(event_id)
    return found


async def local_snapshots(runtime: Runtime, wanted: dict[str, int], wait: float) -> dict[str, dict[str, Any]]:
    futures = {}
    for tp, offset in wanted.items():
        topic, _, partition = tp.rpartition("|")
        futures[tp] = runtime.snapshot_at(topic, int(partition), offset)
    if futures:
        await asyncio.wait(futures.values(), timeout=wait)
    answers = {tp: future.result() if future.done() else {"status": "timeout"} for tp, future in futures.items()}
    for future in futures.values():
        future.cancel()  # a wait that timed out is forgotten (Runtime.snapshot_at), not left for every record to walk past
    return answers


class Cluster:
    """Scatter-gather over the workers that own the partitions."""

    def __init__(self, app: faust.App, runtime: Runtime, headers: dict[str, str]) -> None:
        self.app = app
        self.runtime = runtime
        #: sent with every request to a peer (the cluster secret)
        self.headers = headers

    def _peers(self) -> list[str]:
        me = str(self.app.conf.canonical_url).rstrip("/")
        peers = []
        for url in self.app.router.tables_metadata():
            peer = str(url).rstrip("/")
            if peer != me:
                peers.append(peer)
        return sorted(set(peers))

    async def _fetch(self, path: str, params: list[tuple[str, str]], body: Any = None, timeout_s: float = 10) -> list[Any]:
        """Every peer's JSON answer to GET ``path`` (or POST of ``body``)."""
        peers = self._peers()
        if not peers:
            return []
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        method = "GET" if body is None else "POST"
        data = None if body is None else orjson.dumps(body)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:

            async def one(url: str) -> Any:
                try:
                    async with session.request(method, url + path, params=params, data=data) as response:
                        if response.status == 503:
                            raise NotReady(f"worker {url} is recovering its state or rebalancing; retry shortly")
                        response.raise_for_status()
                        return orjson.loads(await response.read())
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise NotReady(f"worker {url} did not answer ({exc!r}); retry shortly") from None

            return list(await asyncio.gather(*(one(url) for url in peers)))

    async def partials(self, series: list[tuple[str, str]]) -> dict[str, tuple[dict[int, int], int, float | None]]:
        local = _local_partials(self.runtime.local_states(), series)
        remote = await self._fetch(INTERNAL_PARTIALS, [("series", f"{k}:{v}") for k, v in series])
        merged: dict[str, tuple[dict[int, int], int, float | None]] = {}
        for name in local:
            parts = list(local[name])
            for answer in remote:
                parts.extend(answer.get(name, []))
            buckets, total = merge_partials(parts)
            times = [p["stream_time"] for p in parts if p.get("stream_time") is not None]
            merged[name] = (buckets, total, max(times) if times else None)
        return merged

    async def seen(self, ids_by_topic: dict[str, list[str]]) -> set[str]:
        """The ids that some worker's stream has already counted (within the dedup horizon)."""
        found = local_seen(self.runtime.local_states(), ids_by_topic)
        for answer in await self._fetch(INTERNAL_SEEN, [], ids_by_topic):
            found.update(answer)
        return found

    async def offsets(self) -> dict[str, int]:
        """Last applied offset of every input partition, from whichever worker owns it."""
        found = self.runtime.offsets()
        for answer in await self._fetch(INTERNAL_OFFSETS, []):
            found.update(answer)
        return found

    async def snapshots(self, wanted: dict[str, int], wait: float) -> dict[str, dict[str, Any]]:
        """``topic|partition -> snapshot at offset`` from the owners (see Runtime.snapshot_at)."""
        params = [("at", f"{tp}|{offset}") for tp, offset in wanted.items()] + [("wait", str(wait))]
        found = await local_snapshots(self.runtime, wanted, wait)
        for answer in await self._fetch(INTERNAL_SNAPSHOT, params, timeout_s=wait + 10):
            for tp, result in answer.items():
                if result.get("status") != "not-owned":
                    found[tp] = result
        return found

    async def statements(self, country: str | None, *, owned_only: bool = False) -> list[dict[str, Any]]:
        """Statements reconciled against every worker's counts (only this worker's statements if owned_only)."""
        items = [s for st in self.runtime.local_states() for s in st.statements.values()]
        if not owned_only:
            for answer in await self._fetch(INTERNAL_STATEMENTS, []):
                items.extend(answer)
        if country is not None:
            items = [s for s in items if s["country"] == country]
        wanted = observed_series(items)
        partials = await self.partials(wanted) if wanted else {}
        return reconcile_all(items, lambda kind, country: partials[f"{kind}:{country}"][0])


def ready(app: faust.App) -> bool:
    """Recovered and not rebalancing: the answers are complete."""
    recovery = app.tables.recovery  # type: ignore[attr-defined]  # TableManager has it, TableManagerT not
    return bool(app.consumer is not None and not app.rebalancing and not recovery.in_recovery and recovery.completed.is_set())


class StateView(View):
    """A view that reads the state: 503 with the reason while this worker, or a peer it asks, is recovering."""

    async def dispatch(self, request: Any) -> Any:
        try:
            return await super().dispatch(request)
        except NotReady as exc:
            return _json(self, {"error": str(exc), "status": "recovering"}, 503)


def _json(view: View, body: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(body), content_type="application/json", status=status)


def _time_param(request: Request, name: str) -> float | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError:
        raise BadParameter(name, f"not an RFC 3339 date-time with an offset: {value[:40]!r}") from None


def _install_views(app: faust.App, settings: Settings, runtime: Runtime, cluster: Cluster) -> None:
    config = settings.core()

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            ok = ready(app)
            body = {"status": "ready" if ok else "starting", **runtime.describe()}
            return _json(self, body, 200 if ok else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def counts(view: View, request: Request, label: str, kind: str, key: str) -> Response:
        try:
            spec = window_spec(config, request.query.get("window"))
            start, end = _time_param(request, "start"), _time_param(request, "end")
        except BadParameter as exc:
            return _json(view, {"error": str(exc), "parameter": exc.name}, 400)
        name = f"{kind}:{key}"
        buckets, total, stream_time = (await cluster.partials([(kind, key)]))[name]
        return _json(view, {label: key, "window": spec.name, "windows": windows_of(buckets, total, stream_time, spec, config, start, end)})

    @app.page("/counts/borders/{border}")
    class BorderCounts(StateView):
        async def get(self, request: Request, border: str) -> Response:
            return await counts(self, request, "border", BORDER, border)

    @app.page("/counts/countries/{country}")
    class CountryCounts(StateView):
        async def get(self, request: Request, country: str) -> Response:
            return await counts(self, request, "country", ENTRIES, country)

    @app.page("/net-inflow/{country}")
    class NetInflow(StateView):
        async def get(self, request: Request, country: str) -> Response:
            try:
                spec = window_spec(config, request.query.get("window"))
                start, end = _time_param(request, "start"), _time_param(request, "end")
            except BadParameter as exc:
                return _json(self, {"error": str(exc), "parameter": exc.name}, 400)
            got = await cluster.partials([(ENTRIES, country), (DEPARTURES, country)])
            e_buckets, e_total, e_time = got[f"{ENTRIES}:{country}"]
            d_buckets, d_total, d_time = got[f"{DEPARTURES}:{country}"]
            times = [t for t in (e_time, d_time) if t is not None]
            windows = net_inflow_windows(e_buckets, d_buckets, (e_total, d_total), max(times) if times else None, spec, config, start, end)
            return _json(self, {"country": country, "window": spec.name, "windows": windows})

    @app.page("/statements")
    class Statements(StateView):
        async def get(self, request: Request) -> Response:
            country = request.query.get("country") or None
            return _json(self, {"statements": await cluster.statements(country)})

    @app.page(INTERNAL_PARTIALS)
    class Partials(StateView):
        async def get(self, request: Request) -> Response:
            names: list[str] = request.query.getall("series", [])  # type: ignore[attr-defined]  # aiohttp MultiDict
            wanted = [(kind, key) for kind, _, key in (name.partition(":") for name in names)]
            body = _local_partials(runtime.local_states(), wanted)
            return _json(
                self,
                {name: [{**p, "buckets": {str(b): c for b, c in p["buckets"].items()}} for p in parts] for name, parts in body.items()},
            )

    @app.page(INTERNAL_STATEMENTS)
    class LocalStatements(StateView):
        async def get(self, request: Request) -> Response:
            own = [st for st in runtime.local_states() if st.topic == runtime.topics.statements]
            return _json(self, [s for st in own for s in st.statements.values()])

    del Health, Metrics, BorderCounts, CountryCounts, NetInflow, Statements, Partials, LocalStatements


def _install_ingest(app: faust.App, runtime: Runtime, ingest: Ingest) -> None:
    @app.page("/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            status, body = await self._answer(request)
            metrics.INGEST_REQUESTS.labels(code=str(status)).inc()
            headers = {"WWW-Authenticate": 'Bearer realm="borderflow"'} if status == 401 else None
            response = _json(self, body, status)
            if headers:
                response.headers.update(headers)
            return response

        async def _answer(self, request: Request) -> tuple[int, dict[str, Any]]:
            try:
                refused = ingest.authorize(request.headers.get("Authorization"))
                if refused is not None:
                    raise refused
                kind = media_type(request.headers.get("Content-Type"))
                body = await ingest.read(request.content_length, request.content.read)  # type: ignore[attr-defined]  # aiohttp
                return await ingest.handle(kind, body)
            except BodyError as exc:
                return exc.status, exc.body()

    @app.page(INTERNAL_SEEN)
    class Seen(StateView):
        async def post(self, request: Request) -> Response:
            try:
                wanted = seen_request(await request.read())
            except BadParameter as exc:
                return _json(self, {"error": str(exc), "parameter": exc.name}, 400)
            return _json(self, sorted(local_seen(runtime.local_states(), wanted)))

    del Events, Seen


def _install_replay_views(app: faust.App, runtime: Runtime, cluster: Cluster) -> None:
    """Offsets and snapshots at an offset, which ``borderflow replay --verify`` compares."""

    @app.page(INTERNAL_OFFSETS)
    class Offsets(StateView):
        async def get(self, request: Request) -> Response:
            if request.query.get("all"):
                return _json(self, await cluster.offsets())
            return _json(self, runtime.offsets())

    @app.page(INTERNAL_SNAPSHOT)
    class Snapshot(StateView):
        async def get(self, request: Request) -> Response:
            try:
                wanted, wait = snapshot_request(request.query.getall("at", []), request.query.get("wait"))  # type: ignore[attr-defined]  # aiohttp MultiDict
            except BadParameter as exc:
                return _json(self, {"error": str(exc), "parameter": exc.name}, 400)
            if request.query.get("all"):
                return _json(self, await cluster.snapshots(wanted, wait))
            return _json(self, await local_snapshots(runtime, wanted, wait))

    del Offsets, Snapshot

"""The Faust app: topics, tables, agents and the HTTP views, built from Settings."""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.types import TP

from streams.core.queries import (
    StatementView,
    gauged_statements,
)
from streams.core.reading import PartitionReading
from streams.defects import DeadMemberEvictor, group_instance_id
from streams.engine import metrics
from streams.engine.fastpath import BatchInputs, FetchedBatch
from streams.engine.membership import GroupMembership
from streams.engine.partitions import NotReady
from streams.engine.runtime import Runtime, is_ready
from streams.engine.seam import BatchChannel, BorderflowApp, ConsumerParts, DeclaredTableManager, read_bare
from streams.kafka.clients import client_options
from streams.kafka.topics import STATE_TABLE
from streams.settings import Settings
from streams.web.access import AccessPolicy, access_middleware, cluster_headers, secure_headers
from streams.web.cluster import Cluster
from streams.web.ingest import Ingest
from streams.web.views import install_routes

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


#: changelog records a standby replica buffers before writing them to its store. Faust's default is the recovery
#: buffer (1000) with no flush on time: a replica of a quiet partition then stays up to 1000 records behind for
#: as long as the partition stays quiet, so it could not stand in for its owner during a restart (docs/scaling.md)
STANDBY_BUFFER_SIZE = 1


def broker_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """Kafka TLS/SASL settings passed through to every Faust client: the same as every other client's (client_options)."""
    options = client_options(settings)
    context = options.get("ssl_context")
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> BorderflowApp:
    """The app for ``settings``, whose broker is known (:func:`streams.defects.resolve_broker`)."""
    if settings.broker == "auto" or settings.evict_dead_members is None:
        raise ValueError("create_app needs settings whose broker is resolved: streams.defects.resolve_broker")
    config = settings.core()
    parts = ConsumerParts(fetch_max_wait_ms=settings.fetch_max_wait_ms)
    app = BorderflowApp(
        settings.app_id,
        consumer_parts=parts,
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
        # per partition and fetch: fewer round trips for the consumer thread; uncompressed upstream input
        # needs the room: 4 MiB held too few crossings to keep the worker busy (docs/benchmarks.md)
        consumer_max_fetch_size=16 * 1024 * 1024,
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
    state = app.Table(
        STATE_TABLE,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        options=ROCKSDB_OPTIONS,
        standby_buffer_size=STANDBY_BUFFER_SIZE,
    )
    membership = GroupMembership(app, settings.session_timeout.total_seconds())
    runtime = Runtime(app, config, settings.topics, state, lambda: is_ready(app), membership=membership, forward=settings.forward)
    parts.checkpoint = runtime.checkpoint

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
        """One agent for every input topic, fed whole fetched batches by the consumer (streams/engine/fastpath.py)."""
        for topic_name in topic_names:  # subscribed, so the assignor co-partitions the table with them
            app.topics.add(app.topic(topic_name, key_type=bytes, value_type=bytes, partitions=settings.partitions, acks=True))
        batches = BatchChannel(app, maxsize=FETCHED_BATCHES_QUEUED)

        async def process_input(stream: faust.StreamT[FetchedBatch]) -> None:
            async for batch in stream:  # backpressure: DirectOutput waits when the producer's batches are full
                with metrics.BATCH_SECONDS.time():
                    await runtime.process_fetched(batch)

        app.agent(batches, name="borderflow.inputs")(process_input)
        parts.inputs = BatchInputs(topic_names, batches.put)  # type: ignore[arg-type]  # a channel carries any value
        read_bare(topic_names)

    if settings.fast_path:
        make_batch_agent(list(settings.topics.inputs))
    else:
        for topic_name in settings.topics.inputs:
            make_agent(topic_name)

    cluster = Cluster(app, runtime, cluster_headers(settings), settings.partitions)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # Faust sends (sender)
    async def _close_cluster(sender: Any, **_: Any) -> None:
        await cluster.close()
    #: this worker's statements with cluster-wide observed figures, for the gauges
    statement_views: list[StatementView] = []

    app.monitor = metrics.EngineMonitor(metrics=metrics.FAUST)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust sends (sender, assigned)
    async def _on_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
        membership.assigned()
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
        statement_views[:] = gauged_statements(fresh)

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

    install_routes(app, settings, runtime, cluster, ingest)
    access = AccessPolicy(settings)
    if access.refusal is not None:
        log.error("%s", access.refusal)
    app.web.web_app.middlewares.append(access_middleware(access))  # type: ignore[attr-defined]  # the aiohttp driver's
    app.web.web_app.on_response_prepare.append(secure_headers)  # type: ignore[attr-defined]  # the aiohttp driver's

    def highwater(topic: str, partition: int) -> int | None:
        consumer = app.consumer
        try:
            return consumer.highwater(TP(topic, partition)) if consumer is not None else None
        except Exception:  # noqa: BLE001 - not assigned yet, or the consumer is restarting
            return None

    def owned() -> list[PartitionReading]:
        """For the gauges: nothing while recovering (a gauge is better absent than wrong)."""
        try:
            return runtime.partitions.readings()
        except NotReady:
            return []

    metrics.STATE.attach(
        readings=owned,
        statements=lambda: statement_views,
        # counted from memory: len() of the RocksDB store would walk every key on every scrape
        table_sizes=lambda: {STATE_TABLE: sum(r.record_count for r in owned()), "dedup_ids": sum(r.dedup_size for r in owned())},
        bucket=config.bucket,
        rolling=config.rolling,
        highwater=highwater,
        ready=lambda: runtime.partitions.unavailable() is None,
    )
    return app

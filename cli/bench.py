"""``borderflow bench``: events/second and peak memory of one worker against a bare consumer."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cli.common import settings_from
from streams.broker.apache_kafka import KafkaCluster, kafka_version
from streams.broker.embedded import EmbeddedBroker, free_port
from streams.kafka.clients import client_options
from streams.tools.bench import (
    INPUT_SHAPES,
    Result,
    bare_consumer,
    bench_events,
    core_only,
    figures_of,
    prepare,
    run_baseline,
    time_workers,
)
from streams.tools.replay import connection_env


@click.command()
@click.option(
    "--kafka",
    envvar="BORDERFLOW_KAFKA",
    default=None,
    help="An existing cluster to use; default: a fresh broker of --broker [BORDERFLOW_KAFKA]",
)
@click.option(
    "--broker",
    "broker_kind",
    type=click.Choice(["kafka", "embedded"]),
    default="kafka",
    show_default=True,
    help="Without --kafka: start one Apache Kafka node (the pinned release, fetched by 'make kafka') or the embedded broker.",
)
@click.option("--events", "n_events", default=1_000_000, show_default=True, type=click.IntRange(1), help="Events to pre-publish.")
@click.option("--cells", default=100_000, show_default=True, type=click.IntRange(1), help="About how many (checkpoint, hour) cells.")
@click.option(
    "--misrouted",
    default=0,
    show_default=True,
    type=click.IntRange(0, 100),
    help="Percent of events published away from their home partition (as librdkafka's partitioner would): each is forwarded home.",
)
@click.option("--partitions", default=4, show_default=True, type=click.IntRange(1), help="Partitions of the bench topic.")
@click.option(
    "--baseline-events",
    default=30_000,
    show_default=True,
    type=click.IntRange(0),
    help="Events for the idiomatic Faust baseline (0 skips it); its rate is measured on this many.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Also time this many workers sharing the partitions (contestant d), when more than 1.",
)
@click.option(
    "--input-shape",
    type=click.Choice(list(INPUT_SHAPES)),
    default="borderflow",
    show_default=True,
    help="How the events are published. "
    + "; ".join(f"{shape.name}: {shape.description}" for shape in INPUT_SHAPES.values())
    + ". --cells applies only to a shape without its own checkpoints.",
)
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "lz4", "zstd", "snappy"]),
    default=None,
    help="Override the input shape's compression (borderflow's own producers use zstd: BORDERFLOW_COMPRESSION).",
)
@click.option(
    "--fetch-max-wait-ms",
    type=click.IntRange(0, 30_000),
    default=None,
    help="BORDERFLOW_FETCH_MAX_WAIT_MS for the workers (default: theirs).",
)
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds each contestant may take.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(
    kafka: str | None,
    broker_kind: str,
    n_events: int,
    cells: int,
    partitions: int,
    misrouted: int,
    baseline_events: int,
    workers: int,
    input_shape: str,
    compression: str | None,
    fetch_max_wait_ms: int | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Pre-publish EVENTS crossings, then time (a) a bare aiokafka consumer, (b) an idiomatic
    Faust agent, (c) a borderflow worker and (d) with --workers N, N workers, draining them in the same run.

    Peak RSS is the largest worker's."""
    console = Console(stderr=True)
    shape = INPUT_SHAPES[input_shape]
    if compression is None:
        compression = shape.compression or "none"
    worker_settings = {} if fetch_max_wait_ms is None else {"BORDERFLOW_FETCH_MAX_WAIT_MS": str(fetch_max_wait_ms)}
    embedded: EmbeddedBroker | None = None
    cluster: KafkaCluster | None = None
    broker_dir = None
    connection: dict[str, Any] = {}  # TLS and SASL of an existing cluster, for every client here
    if kafka is not None:
        settings = settings_from(kafka=kafka)
        connection = {name: value for name, value in client_options(settings).items() if name != "bootstrap_servers"}
        worker_settings |= connection_env(settings)
        described = f"the cluster at {kafka}"
    elif broker_kind == "embedded":
        broker_dir = Path(tempfile.mkdtemp(prefix="borderflow-bench-broker-"))
        embedded = EmbeddedBroker(port=free_port(), data_dir=broker_dir)
        with console.status("starting the embedded broker"):
            embedded.start()
        kafka, described = embedded.bootstrap, f"embedded broker (noida-db {version('noida-db')})"
    else:
        with console.status(f"starting Apache Kafka {kafka_version()} (one KRaft node)"):
            cluster = KafkaCluster(nodes=1, heap_mb=1024).start()
        kafka, described = cluster.bootstrap, f"Apache Kafka {cluster.version}, one KRaft node"
    console.print(f"broker: {described}")
    try:
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        topic = prefix + "crossings"
        events = bench_events(n_events, cells, misrouted=misrouted / 100, partitions=partitions, checkpoints=shape.checkpoints)
        away = sum(1 for _, _, partition in events if partition is not None)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"publishing {n_events:,} events", total=n_events)
            codec = None if compression == "none" else compression
            asyncio.run(
                prepare(kafka, topic, partitions, events, lambda done: progress.update(task, completed=done), codec, shape, connection)
            )

        def settle() -> None:
            # on the embedded broker each contestant starts on a quiet broker, not during the
            # rewrite an earlier one's writes caused (streams/defects.py, defect 4)
            if embedded is not None:
                with console.status("waiting for the embedded broker to finish rewriting its store"):
                    embedded.wait_quiet()

        settle()
        with console.status("pure core on the same events, in process"):
            ceiling = core_only([value for _, value, _ in events])
        del events
        results: list[Result] = []
        settle()
        with console.status("(a) bare aiokafka consumer draining the topic"):
            results.append(asyncio.run(bare_consumer(kafka, topic, n_events, connection)))
        if baseline_events:
            settle()
            with console.status(f"(b) idiomatic Faust agent on {min(baseline_events, n_events):,} events"):
                results.append(run_baseline(kafka, topic, min(baseline_events, n_events), partitions, timeout, worker_settings))
        settle()
        with console.status("(c) borderflow worker"):
            results.append(time_workers(kafka, prefix, n_events, [free_port()], partitions, timeout, away, worker_settings))
        if workers > 1:
            settle()
            with console.status(f"(d) {workers} borderflow workers"):
                ports = [free_port() for _ in range(workers)]
                results.append(time_workers(kafka, prefix, n_events, ports, partitions, timeout, away, worker_settings))
        results.append(ceiling)
    finally:
        if embedded is not None:
            embedded.stop()
        if cluster is not None:
            cluster.stop()
        if broker_dir is not None:
            shutil.rmtree(broker_dir, ignore_errors=True)
    figures = figures_of(results) | {
        "events": n_events,
        "cells": cells,
        "partitions": partitions,
        "misrouted_percent": misrouted,
        "input_shape": input_shape,
        "checkpoints": None if shape.checkpoints is None else len(shape.checkpoints),
        "compression": compression,
        "fetch_max_wait_ms": fetch_max_wait_ms,
        "broker": described,
    }
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        return
    spread = f"~{cells:,} cells" if shape.checkpoints is None else f"{len(shape.checkpoints)} checkpoints"
    waits = "" if fetch_max_wait_ms is None else f", fetch wait {fetch_max_wait_ms} ms"
    table = Table(
        title=f"{n_events:,} events, {input_shape} input ({spread}, {compression}), {partitions} partitions, "
        f"{misrouted} % misrouted{waits}, on {described}"
    )
    columns = (
        "contestant",
        "events",
        "seconds",
        "events/s",
        "ratio to (a)",
        "speed-up over (b)",
        "peak RSS MB",
        "first result s",
        "events/s after first result (ratio to a)",
    )
    for column in columns:
        table.add_column(column, justify="right")
    for row in figures["results"]:  # type: ignore[attr-defined]
        table.add_row(
            str(row["name"]),
            f"{row['events']:,}",
            f"{row['seconds']:.1f}",
            f"{row['events_per_s']:,}",
            str(row["ratio_to_bare"]),
            str(row.get("speedup_over_baseline", "-")),
            "-" if row["peak_rss_mb"] is None else f"{row['peak_rss_mb']:.0f}",
            "-" if row["first_result_s"] is None else f"{row['first_result_s']:.1f}",
            "-" if row["drain_events_per_s"] is None else f"{row['drain_events_per_s']:,} ({row['drain_ratio_to_bare']})",
        )
    Console(width=max(Console().width, 140)).print(table)
    for row in figures["results"]:  # type: ignore[attr-defined]
        if row.get("dead_letters"):
            console.print(
                f"[yellow]{row['name']} dead-lettered {row['dead_letters']:,} of the {row['events']:,} events: "
                "its rate is partly that of the dead-letter path[/yellow]"
            )

"""``borderflow bench``: events/second and peak memory of one worker against a bare consumer."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from streams.bench import Result, bare_consumer, bench_events, core_only, prepare, report, run_baseline, run_worker
from streams.broker import EmbeddedBroker, free_port


@click.command()
@click.option("--kafka", envvar="BORDERFLOW_KAFKA", default=None, help="Broker to use; default: a fresh embedded broker [BORDERFLOW_KAFKA]")
@click.option("--events", "n_events", default=1_000_000, show_default=True, type=click.IntRange(1), help="Events to pre-publish.")
@click.option("--cells", default=100_000, show_default=True, type=click.IntRange(1), help="About how many (checkpoint, hour) cells.")
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
    "--compression",
    type=click.Choice(["none", "gzip", "lz4", "zstd", "snappy"]),
    default="zstd",
    show_default=True,
    help="How the events are published (borderflow's own producers use zstd: BORDERFLOW_COMPRESSION).",
)
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds each contestant may take.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench(
    kafka: str | None,
    n_events: int,
    cells: int,
    partitions: int,
    baseline_events: int,
    workers: int,
    compression: str,
    timeout: float,
    as_json: bool,
) -> None:
    """Pre-publish EVENTS crossings, then time (a) a bare aiokafka consumer, (b) an idiomatic
    Faust agent, (c) a borderflow worker and (d) with --workers N, N workers, draining them in the same run.

    Peak RSS is the largest worker's."""
    console = Console(stderr=True)
    broker = None
    if kafka is None:
        broker = EmbeddedBroker(port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="borderflow-bench-broker-")))
        broker.start()
        kafka = broker.bootstrap
    try:
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        topic = prefix + "crossings"
        events = bench_events(n_events, cells)
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"publishing {n_events:,} events", total=n_events)
            codec = None if compression == "none" else compression
            asyncio.run(prepare(kafka, topic, partitions, events, lambda done: progress.update(task, completed=done), codec))

        def settle() -> None:
            # each contestant starts on a quiet broker, not during the rewrite an earlier one's writes caused
            if broker is not None:
                with console.status("waiting for the embedded broker to finish rewriting its store"):
                    broker.wait_quiet()

        settle()
        with console.status("pure core on the same events, in process"):
            ceiling = core_only([value for _, value in events])
        del events
        results: list[Result] = []
        settle()
        with console.status("(a) bare aiokafka consumer draining the topic"):
            results.append(asyncio.run(bare_consumer(kafka, topic, n_events)))
        if baseline_events:
            settle()
            with console.status(f"(b) idiomatic Faust agent on {min(baseline_events, n_events):,} events"):
                results.append(run_baseline(kafka, topic, min(baseline_events, n_events), partitions, timeout))
        settle()
        with console.status("(c) borderflow worker"):
            results.append(run_worker(kafka, prefix, n_events, [free_port()], partitions, timeout))
        if workers > 1:
            settle()
            with console.status(f"(d) {workers} borderflow workers"):
                results.append(run_worker(kafka, prefix, n_events, [free_port() for _ in range(workers)], partitions, timeout))
        results.append(ceiling)
    finally:
        if broker is not None:
            broker.stop()
    figures = report(results) | {
        "events": n_events,
        "cells": cells,
        "partitions": partitions,
        "compression": compression,
        "broker": "embedded" if broker else kafka,
    }
    if as_json:
        click.echo(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"{n_events:,} events, ~{cells:,} cells, {partitions} partitions, {compression}")
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

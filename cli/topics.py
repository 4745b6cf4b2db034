"""``borderflow topics``: create the input and output topics (idempotent)."""

from __future__ import annotations

import asyncio

import click

from cli.common import kafka_option, settings_from
from streams.kafka.admin import KafkaUnreachable, TopicMismatch, wait_for_topics


@click.command()
@kafka_option
@click.option("--partitions", envvar="BORDERFLOW_PARTITIONS", type=int, default=None, help="Partitions per topic [BORDERFLOW_PARTITIONS]")
@click.option("--replication", envvar="BORDERFLOW_REPLICATION", type=int, default=None, help="Replication factor [BORDERFLOW_REPLICATION]")
def topics(kafka: str | None, partitions: int | None, replication: int | None) -> None:
    """Create crossings, departures, statements, borderflow-dlq and window-results."""
    settings = settings_from(kafka=kafka, partitions=partitions, replication=replication)
    try:
        statuses = asyncio.run(wait_for_topics(settings))
    except (TopicMismatch, KafkaUnreachable) as exc:
        raise click.ClickException(str(exc)) from None
    for status in statuses:
        click.echo(f"{status.name}: {status.partitions} partitions ({'created' if status.created else 'exists'})")

"""``borderflow worker``: one worker; stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

import click

from cli.common import kafka_option, settings_from
from streams.kafka.admin import KafkaUnreachable, TopicMismatch, TopicStatus, wait_for_topics
from streams.kafka.permissions import check_permissions
from streams.settings import Settings
from streams.web.starting import answering_starting


@click.command()
@kafka_option
@click.option("--app-id", envvar="BORDERFLOW_APP_ID", default=None, help="Consumer group and changelog prefix [BORDERFLOW_APP_ID]")
@click.option("--data-dir", envvar="BORDERFLOW_DATA_DIR", default=None, help="Local state directory [BORDERFLOW_DATA_DIR]")
@click.option("--web-host", envvar="BORDERFLOW_WEB_HOST", default=None, help="HTTP bind address [BORDERFLOW_WEB_HOST]")
@click.option("--web-port", envvar="BORDERFLOW_WEB_PORT", type=int, default=None, help="HTTP port [BORDERFLOW_WEB_PORT]")
@click.option("--log-level", envvar="BORDERFLOW_LOG_LEVEL", default=None, help="Log level [BORDERFLOW_LOG_LEVEL]")
def worker(
    kafka: str | None, app_id: str | None, data_dir: str | None, web_host: str | None, web_port: int | None, log_level: str | None
) -> None:
    """Run one worker: consume the input topics, keep the counts, serve HTTP and metrics."""
    settings = settings_from(kafka=kafka, app_id=app_id, data_dir=data_dir, web_host=web_host, web_port=web_port, log_level=log_level)
    from streams.app.worker import run_worker

    try:
        # before Faust subscribes: a subscription to a missing topic could auto-create it with the wrong partition count
        asyncio.run(_wait_for_kafka(settings))
    except TopicMismatch as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaUnreachable as exc:
        raise click.ClickException(str(exc)) from None

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(f"worker {settings.app_id} on {settings.kafka}; HTTP on http://{settings.web_host}:{settings.web_port}", err=True)
    run_worker(settings)


async def _wait_for_kafka(settings: Settings) -> list[TopicStatus]:
    """The topics checked, while /health answers 503; at most BORDERFLOW_STARTUP_TIMEOUT."""
    async with answering_starting(settings, f"waiting for Kafka at {settings.kafka}"):
        statuses = await wait_for_topics(settings)
        if settings.security_protocol != "PLAINTEXT":  # a cluster that authenticates nobody has no principal's ACLs to check
            await check_permissions(settings)
        return statuses

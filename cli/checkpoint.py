"""``borderflow checkpoint SLUG``: register a checkpoint, or change one, while the workers run."""

from __future__ import annotations

import asyncio
import time
import uuid

import click

from cli.common import kafka_option, settings_from
from events.codec import encode
from events.model import Registration
from events.times import format_utc
from events.validation import InvalidEvent, validate
from streams.kafka.publisher import Publisher


@click.command()
@click.argument("slug")
@click.option("--countries", required=True, help="The two countries it joins, ISO 3166-1 alpha-2, comma-separated: RU,KZ.")
@click.option("--name", required=True, help="Its display name, shown in the console and /overview.")
@click.option("--source", default=None, help="Who registers it (kept with the registration).")
@kafka_option
def checkpoint(slug: str, countries: str, name: str, source: str | None, kafka: str | None) -> None:
    """Register checkpoint SLUG between two countries, or change its countries or name.

    The registration goes on the crossings topic, keyed by SLUG as the
    crossings at it are, and holds for every crossing after it in that
    partition: the workers apply it without a restart, and a replay applies
    it at the same place. Crossings it would have counted before it are in
    the dead-letter topic; publish them again to count them.
    """
    message = {
        "type": "checkpoint",
        "event_id": f"checkpoint-{slug}-{uuid.uuid4().hex}",
        "registered_at": format_utc(time.time()),
        "border": slug,
        "countries": [code.strip() for code in countries.split(",")],
        "name": name,
        **({"source": source} if source is not None else {}),
    }
    try:
        registration = validate(message)
    except InvalidEvent as exc:
        raise click.BadParameter(exc.reason, param_hint=f"--{exc.field}" if exc.field != "border" else "SLUG") from None
    assert isinstance(registration, Registration)
    settings = settings_from(kafka=kafka)

    async def run() -> None:
        async with Publisher(settings) as publisher:
            await publisher.deliver([(registration, encode(registration))])

    try:
        asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - any broker failure ends the command with its message
        raise click.ClickException(f"registering {slug} failed: {exc!r}") from None
    between = " and ".join(sorted(registration.countries))
    click.echo(f"registered {slug} ({name}) between {between} on {settings.topics.for_type('checkpoint')}")

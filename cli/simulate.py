"""``borderflow simulate``: publish the September 2022 scenario."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import Progress

from cli.common import kafka_option, settings_from
from events.codec import message_key
from events.files import read_ndjson
from events.validation import validate
from streams.publisher import Publisher
from streams.simulation import simulate as generate

SEED_STATEMENTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "seed-statements.ndjson"


@click.command()
@kafka_option
@click.option("--seed", envvar="BORDERFLOW_SEED", default=2022, show_default=True, type=int, help="Random seed [BORDERFLOW_SEED]")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write NDJSON here instead of publishing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate(kafka: str | None, seed: int, output: Path | None, quiet: bool) -> None:
    """Publish the seeded September 2022 surge and the real statements of that week."""
    events = list(generate(seed))
    with SEED_STATEMENTS.open("rb") as stream:
        statements = [line.data for line in read_ndjson(stream) if line.event is not None]
    if output is not None:
        with output.open("wb") as out:
            for event in events:
                out.write(event.data + b"\n")
            for data in statements:
                out.write(data + b"\n")
        click.echo(f"wrote {len(events) + len(statements)} events to {output}")
        return
    settings = settings_from(kafka=kafka)
    started = time.monotonic()

    async def run() -> None:
        async with Publisher(settings) as publisher:
            with Progress(console=Console(stderr=True), disable=quiet) as progress:
                task = progress.add_task("publishing September 2022", total=len(events) + len(statements))
                for event in events:
                    topic = settings.topics.for_type(event.topic_type)
                    try:
                        key = message_key(validate(orjson.loads(event.data)))
                    except ValueError:
                        key = None
                    await publisher.send_raw(topic, event.data, key=key)
                    progress.advance(task)
                for data in statements:
                    parsed = validate(orjson.loads(data))
                    await publisher.send(parsed, data)
                    progress.advance(task)
                await publisher.flush()

    asyncio.run(run())
    click.echo(f"published {len(events) + len(statements)} events in {time.monotonic() - started:.1f}s")

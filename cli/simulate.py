"""``borderflow simulate``: publish the September 2022 scenario, or write it to a file."""

from __future__ import annotations

import asyncio
import csv
import time
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.progress import Progress

from cli.common import kafka_failure, kafka_option, settings_from
from events.files import read_ndjson
from streams.kafka.publisher import Publisher
from streams.tools.simulation import SimEvent, with_statements
from streams.tools.simulation import simulate as generate

SEED_STATEMENTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "seed-statements.ndjson"


def timeline(seed: int) -> list[SimEvent]:
    with SEED_STATEMENTS.open("rb") as stream:
        statements = [line.data for line in read_ndjson(stream) if line.event is not None]
    return with_statements(generate(seed), statements)


def write_file(events: list[SimEvent], output: Path) -> None:
    """NDJSON, or CSV (header names the fields) when the name ends in .csv."""
    if output.suffix.lower() != ".csv":
        with output.open("wb") as out:
            out.writelines(event.data + b"\n" for event in events)
        return
    rows = [orjson.loads(event.data) for event in events]
    fields = list(dict.fromkeys(name for row in rows for name in row))
    with output.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@click.command()
@kafka_option
@click.option("--seed", envvar="BORDERFLOW_SEED", default=2022, show_default=True, type=int, help="Random seed [BORDERFLOW_SEED]")
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Simulated seconds per second (3600 = an hour a second); default: as fast as possible.",
)
@click.option("--output", type=click.Path(path_type=Path), default=None, help="Write NDJSON (or CSV for *.csv) instead of publishing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def simulate(kafka: str | None, seed: int, speed: float | None, output: Path | None, quiet: bool) -> None:
    """Publish the seeded September 2022 surge and the real statements of that week, in order of publication."""
    events = timeline(seed)
    if output is not None:
        write_file(events, output)
        click.echo(f"wrote {len(events)} events to {output}")
        return
    settings = settings_from(kafka=kafka)
    started = time.monotonic()

    async def run() -> None:
        async with Publisher(settings) as publisher:
            with Progress(console=Console(stderr=True), disable=quiet) as progress:
                task = progress.add_task("publishing September 2022", total=len(events))
                origin = events[0].at
                for event in events:
                    if speed is not None:
                        delay = (event.at - origin) / speed - (time.monotonic() - started)
                        if delay > 0:
                            await publisher.flush()
                            await asyncio.sleep(delay)
                    await publisher.send_raw(settings.topics.for_type(event.topic_type), event.data, key=event.key)
                    progress.advance(task)
                await publisher.flush()

    try:
        asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - any broker failure ends the command with its message
        raise kafka_failure(settings, exc, "publishing failed") from None
    click.echo(f"published {len(events)} events in {time.monotonic() - started:.1f}s")

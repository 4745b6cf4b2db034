"""``borderflow publish FILE…``: validate and publish NDJSON/CSV events."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import IO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.common import kafka_failure, kafka_option, settings_from
from events.files import Line, read_events
from streams.kafka.publisher import Publisher

err = Console(stderr=True)


def _open(name: str) -> tuple[IO[bytes], int | None]:
    if name == "-":
        return sys.stdin.buffer, None
    path = Path(name)
    return path.open("rb"), path.stat().st_size


@click.command()
@click.argument("files", nargs=-1, required=True)
@kafka_option
@click.option("--dry-run", is_flag=True, help="Validate only; publish nothing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def publish(files: tuple[str, ...], kafka: str | None, dry_run: bool, quiet: bool) -> None:
    """Validate FILES (NDJSON, or CSV by extension; - is stdin) and publish the valid lines.

    Exits 0 only if every line was valid and published.
    """
    settings = settings_from(kafka=kafka)
    for name in files:
        if name != "-" and not Path(name).is_file():
            raise click.BadParameter(f"no such file: {name}", param_hint="FILES")
    rejected: list[tuple[str, Line]] = []
    accepted = 0

    async def run() -> None:
        nonlocal accepted
        publisher = None if dry_run else Publisher(settings)
        if publisher is not None:
            await publisher.__aenter__()
        try:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                disable=quiet or not err.is_terminal,
            ) as progress:
                for name in files:
                    stream, size = _open(name)
                    task = progress.add_task(f"{'checking' if dry_run else 'publishing'} {name}", total=size)
                    try:
                        for line in read_events(stream, name):
                            if line.error is not None or line.event is None:
                                rejected.append((name, line))
                            else:
                                if publisher is not None:
                                    await publisher.send(line.event, line.data)
                                accepted += 1
                            progress.update(task, advance=len(line.data) + 1)
                    finally:
                        if stream is not sys.stdin.buffer:
                            stream.close()
        finally:
            if publisher is not None:
                await publisher.__aexit__(None, None, None)

    try:
        asyncio.run(run())
    except Exception as exc:  # noqa: BLE001 - any broker failure ends the command with its message
        raise kafka_failure(settings, exc, f"publishing failed after {accepted} accepted lines") from None
    reasons = Counter(f"{line.error.field}: {line.error.code}" for _, line in rejected if line.error)
    for name, line in rejected[:100]:
        assert line.error is not None
        click.echo(f"{name}:{line.number}: rejected: {line.error}", err=True)
    if len(rejected) > 100:
        click.echo(f"... and {len(rejected) - 100} more rejected lines", err=True)
    verb = "valid" if dry_run else "published"
    summary = f"{accepted} {verb}, {len(rejected)} rejected"
    if reasons:
        summary += " (" + ", ".join(f"{reason}: {n}" for reason, n in reasons.most_common()) + ")"
    click.echo(summary)
    if rejected:
        sys.exit(1)

"""``borderflow broker``: the embedded Kafka-compatible broker, in the foreground."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import click

from streams.broker import EmbeddedBroker


@click.command()
@click.option(
    "--port",
    envvar="BORDERFLOW_BROKER_PORT",
    default=9092,
    show_default=True,
    type=int,
    help="Kafka port on 127.0.0.1 [BORDERFLOW_BROKER_PORT]",
)
@click.option(
    "--data-dir",
    envvar="BORDERFLOW_BROKER_DATA_DIR",
    default=".borderflow/broker",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the broker keeps its log [BORDERFLOW_BROKER_DATA_DIR]",
)
def broker(port: int, data_dir: Path) -> None:
    """Run the embedded broker (noida-db's Kafka service) on 127.0.0.1:PORT."""
    embedded = EmbeddedBroker(port=port, data_dir=data_dir, stdout=None)
    try:
        embedded.start()
    except (RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"broker ready on {embedded.bootstrap} (data in {data_dir}); Ctrl-C stops it", err=True)

    def stop(signum: int, _frame: object) -> None:
        embedded.stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        code = embedded.wait()
    except subprocess.TimeoutExpired:  # pragma: no cover
        code = 1
    sys.exit(code)

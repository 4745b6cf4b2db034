"""``borderflow broker``: the embedded Kafka-compatible broker, in the foreground."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from streams.broker.embedded import EmbeddedBroker


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
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        # Only signal here: the main thread may be inside Popen.wait(), which
        # holds the lock a second wait() in this handler would need (a deadlock).
        nonlocal stopping
        stopping = True
        embedded.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        embedded.start()
    except (RuntimeError, FileNotFoundError) as exc:
        if stopping:
            sys.exit(0)
        raise click.ClickException(str(exc)) from None
    if stopping:  # a signal came while it started
        embedded.stop()
        sys.exit(0)
    click.echo(f"broker ready on {embedded.bootstrap} (data in {data_dir}); Ctrl-C stops it", err=True)
    code = embedded.wait()
    sys.exit(0 if stopping else code)

"""The ``borderflow`` command: one group, a module per subcommand."""

from __future__ import annotations

import click

from cli.bench import bench
from cli.broker import broker
from cli.checkpoint import checkpoint
from cli.demo import demo
from cli.publish import publish
from cli.replay import replay
from cli.simulate import simulate
from cli.topics import topics
from cli.worker import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="borderflow")
def main() -> None:
    """borderflow: event-time counts of border crossings, from Kafka to Prometheus."""


for command in (broker, worker, topics, publish, checkpoint, simulate, replay, demo, bench):
    main.add_command(command)

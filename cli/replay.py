"""``borderflow replay [--verify]``: rebuild the state from the topics into a fresh app, and compare."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from cli.common import kafka_option, settings_from
from streams.core.verify import Difference
from streams.kafka.admin import KafkaUnreachable, TopicMismatch, wait_for_topics
from streams.tools.replay import ReplayError, ReplayProgress, ReplayWorker, follow, input_offsets, verify
from streams.web.access import cluster_headers

err = Console(stderr=True)


@click.command()
@kafka_option
@click.option("--verify", "check", is_flag=True, help="Compare the rebuilt state with the live workers; exit 1 on any difference.")
@click.option(
    "--live", default=None, help="URL of any live worker, for --verify [http://BORDERFLOW_WEB_HOST:BORDERFLOW_WEB_PORT]", metavar="URL"
)
@click.option("--app-id", "replay_id", default=None, help="App id of the rebuilt state [<BORDERFLOW_APP_ID>-replay-<UTC time>]")
@click.option(
    "--data-dir", default=None, type=click.Path(path_type=Path), help="Local state of the replay [<BORDERFLOW_DATA_DIR>/<app id>]"
)
@click.option("--grace", default=None, help="Rebuild with another grace period, e.g. 12h [BORDERFLOW_GRACE]")
@click.option("--since", default=None, help="Rebuild with another cumulative start (RFC 3339) [BORDERFLOW_SINCE]")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait for the replay to reach the end offsets.")
@click.option("--max-differences", default=50, show_default=True, help="Differences to print.")
def replay(
    kafka: str | None,
    check: bool,
    live: str | None,
    replay_id: str | None,
    data_dir: Path | None,
    grace: str | None,
    since: str | None,
    timeout: float,
    max_differences: int,
) -> None:
    """Rebuild the state from the beginning of the input topics under a new app id.

    The replay runs as a worker of its own (own consumer group, changelog and
    local state: the live workers are untouched) until it has applied every
    message up to the end offsets taken at its start. With --verify it then
    compares every partition with the live state at the same offset. To
    switch to the rebuilt state, see docs/replay.md (promotion).
    """
    live_settings = settings_from(kafka=kafka)
    settings = settings_from(kafka=kafka, grace=grace, since=since)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    replay_id = replay_id or f"{settings.app_id}-replay-{stamp}"
    data_dir = data_dir or settings.data_dir / replay_id
    live_url = (live or f"http://{live_settings.web_host}:{live_settings.web_port}").rstrip("/")
    try:
        asyncio.run(wait_for_topics(settings))
        first, end = asyncio.run(input_offsets(settings))
    except (TopicMismatch, KafkaUnreachable, ReplayError) as exc:
        raise click.ClickException(str(exc)) from None

    progress = ReplayProgress(first, end)
    err.print(f"replaying {progress.total:,} messages from {len(end)} partitions into app id [bold]{replay_id}[/] (state in {data_dir})")
    worker = ReplayWorker(settings, replay_id, data_dir)
    started = time.monotonic()
    differences: list[Difference] = []
    try:
        worker.start()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} messages · {task.fields[left]} · {task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task("replay", total=max(progress.total, 1), left=f"{progress.total:,} left", rate="starting")

            def show(p: ReplayProgress) -> None:
                elapsed = time.monotonic() - started
                bar.update(
                    task, completed=p.done, left=p.partitions_left, rate=f"{p.done / elapsed:,.0f} events/s" if p.done else "starting"
                )

            asyncio.run(follow(worker, progress, show, timeout, cluster_headers(settings)))
        elapsed = time.monotonic() - started
        rate = progress.done / max(elapsed, 1e-9)
        err.print(f"replayed {progress.done:,} messages in {elapsed:.1f} s ({rate:,.0f} messages/s, worker start included)")
        if check:
            err.print(f"verifying against the live workers at {live_url} ...")
            differences, compared = asyncio.run(
                verify(live_url, worker.url, settings.core().bucket_seconds, headers=cluster_headers(settings))
            )
            err.print(f"compared {len(compared)} partitions at common offsets")
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach a worker: {exc}") from None
    finally:
        worker.stop()

    if check:
        if differences:
            click.echo(f"DIFFERENT: {len(differences)} differences between live and replay", err=True)
            for difference in differences[:max_differences]:
                click.echo(f"  {difference}", err=True)
            if len(differences) > max_differences:
                click.echo(f"  ... and {len(differences) - max_differences} more", err=True)
        else:
            click.echo("IDENTICAL: every window of every partition matches the live state", err=True)
    click.echo(replay_id)
    err.print(f"to promote: stop the live workers, then start them with BORDERFLOW_APP_ID={replay_id} (docs/replay.md)")
    if differences:
        sys.exit(1)

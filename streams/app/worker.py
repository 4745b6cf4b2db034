"""Running a worker process: the Faust worker around our app, and its local state's life cycle."""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import faust

from streams.app.assembly import create_app
from streams.defects import resolve_broker
from streams.engine.checkpoint import mark_clean_stop, prepare_local_state
from streams.settings import Settings

log = logging.getLogger(__name__)
def tune_garbage_collector() -> None:
    """Collect cycles less often: the hot path allocates a few short-lived objects per event.

    With CPython's default (a young collection every 700 net allocations,
    walking every tracked object of the young generations) the collector took
    a large share of the processing time (docs/benchmarks.md). What the worker built at start-up
    (modules, Faust's services) is frozen out of every collection.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; Faust's worker stops agents, flushes, commits and exits."""
    app = create_app(resolve_broker(settings))
    tune_garbage_collector()
    state_dir = Path(app.conf.datadir)
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)  # the counts, the dedup index and the statements: this worker's user only
    prepare_local_state(state_dir, Path(app.conf.tabledir))
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False, override_logging=False)
    checkpoint = app.consumer_parts.checkpoint
    assert checkpoint is not None, "create_app gives the consumer its checkpoint"
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        mark_clean_stop(state_dir, exit_.code, checkpoint)
        raise

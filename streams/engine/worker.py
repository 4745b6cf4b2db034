"""Running a worker process: the Faust worker around our app, and its local state's life cycle."""

from __future__ import annotations

import gc
import logging
import shutil
from pathlib import Path

import faust

from streams.broker.defects import resolve_broker
from streams.engine.app import create_app
from streams.settings import Settings

log = logging.getLogger(__name__)
CLEAN_SHUTDOWN = "CLEAN_SHUTDOWN"


def prepare_local_state(state_dir: Path, tables: Path) -> bool:
    """Keep the local store only if the last run stopped cleanly; return whether it was kept.

    Table writes reach the local store at once but the changelog only when the
    producer flushes. After a crash the store may hold writes that never
    reached Kafka; kept, they would make this worker disagree with any worker
    that recovers the same partitions from the changelog. So after an unclean
    stop the store is dropped and rebuilt from the changelog, which is the
    source of truth.
    """
    marker = state_dir / CLEAN_SHUTDOWN
    kept = marker.exists() or not tables.exists()
    if not kept:
        log.warning("last run of this worker did not stop cleanly: rebuilding local state from the changelogs")
        shutil.rmtree(tables)
    marker.unlink(missing_ok=True)
    return kept


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
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        if exit_.code in (0, None) and not app.borderflow_runtime.interrupted:  # type: ignore[attr-defined]
            (state_dir / CLEAN_SHUTDOWN).touch()
        raise

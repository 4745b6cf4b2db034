"""Running a worker process: the Faust worker around our app."""

from __future__ import annotations

import faust

from streams.app import create_app
from streams.settings import Settings


def run_worker(settings: Settings) -> None:
    """Run until SIGTERM/SIGINT; Faust's worker stops agents, commits and exits."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True, redirect_stdouts=False, override_logging=False)
    worker.execute_from_commandline()

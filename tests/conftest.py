from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker
from tests.support import WorkerProcess, free_port, unique


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker for the whole session: BORDERFLOW_KAFKA if given, else the embedded one."""
    given = os.environ.get("BORDERFLOW_KAFKA")
    if given:
        yield given
        return
    broker = EmbeddedBroker(port=free_port(), data_dir=tmp_path_factory.mktemp("broker"))
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def deployment(kafka: str, tmp_path: Path) -> dict[str, str]:
    """Environment for one isolated deployment: its own topics, app id and state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    env.update(
        BORDERFLOW_KAFKA=kafka,
        BORDERFLOW_APP_ID=unique("app"),
        BORDERFLOW_TOPIC_PREFIX=unique("t") + ".",
        BORDERFLOW_PARTITIONS="4",
        BORDERFLOW_LOG_LEVEL="INFO",
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    return env


@pytest.fixture
def spawn_worker(deployment: dict[str, str], tmp_path: Path) -> Iterator[object]:
    workers: list[WorkerProcess] = []

    def spawn(name: str = "w1", port: int | None = None, command: tuple[str, ...] | None = None, **extra: str) -> WorkerProcess:
        port = port or free_port()
        env = dict(deployment, BORDERFLOW_WEB_PORT=str(port), BORDERFLOW_DATA_DIR=str(tmp_path / name), **extra)
        worker = WorkerProcess(env=env, port=port, log=tmp_path / f"{name}.log", **({"command": command} if command else {})).start()
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.stop()

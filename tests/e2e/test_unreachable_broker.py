"""A worker whose broker is silent or absent ends at start with an error naming the address and the cause, in bounded time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker.embedded import free_port
from tests.support import http_get, unique

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 5
#: the timeout, a probe of the address (two waits of at most 3 s) and the interpreter's start and exit
BOUND = STARTUP_TIMEOUT + 6 + 10


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A port that accepts TCP connections and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def start_worker(kafka: str, tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    port = free_port()
    env.update(
        BORDERFLOW_KAFKA=kafka,
        BORDERFLOW_APP_ID=unique("app"),
        BORDERFLOW_TOPIC_PREFIX=unique("t") + ".",
        BORDERFLOW_DATA_DIR=str(tmp_path / "data"),
        BORDERFLOW_WEB_PORT=str(port),
        BORDERFLOW_STARTUP_TIMEOUT=f"{STARTUP_TIMEOUT}s",
        PYTHONPATH=str(ROOT),
    )
    command = [sys.executable, "-m", "cli", "worker"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), port


def health_while_starting(process: subprocess.Popen[str], port: int) -> int | None:
    """The status /health answers while the worker waits for Kafka (None if it never answered)."""
    while process.poll() is None:
        try:
            return http_get(f"http://127.0.0.1:{port}/health", timeout=2)[0]
        except OSError:
            time.sleep(0.2)
    return None


@pytest.mark.parametrize("broker", ["silent", "refused"])
def test_a_worker_without_an_answering_broker_exits_with_the_address_and_cause(
    broker: str, silent_listener: int, tmp_path: Path
) -> None:
    port = silent_listener if broker == "silent" else free_port()
    address = f"127.0.0.1:{port}"
    started = time.monotonic()
    process, web_port = start_worker(address, tmp_path)
    try:
        assert health_while_starting(process, web_port) == 503
        assert http_get(f"http://127.0.0.1:{web_port}/livez", timeout=2)[0] == 200  # alive: a liveness probe waits for the bound
        _, stderr = process.communicate(timeout=BOUND + 30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    took = time.monotonic() - started
    assert process.returncode != 0, stderr
    assert took < BOUND, f"took {took:.1f} s:\n{stderr}"
    assert f"Kafka at {address} did not answer within {STARTUP_TIMEOUT} s" in stderr, stderr
    cause = "accepts TCP connections but sent no answer" if broker == "silent" else "connection refused"
    assert cause in stderr, stderr
    assert "Traceback" not in stderr, stderr

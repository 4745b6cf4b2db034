"""``borderflow broker`` runs in the foreground and stops on SIGTERM or SIGINT, leaving nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams.broker.embedded import free_port, port_open

pytestmark = pytest.mark.e2e


def test_a_killed_broker_command_takes_the_broker_with_it(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "broker", "--port", str(port), "--data-dir", str(tmp_path / "b")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, "broker did not start"
            time.sleep(0.1)
        process.kill()  # no chance to clean up
        process.wait()
        deadline = time.monotonic() + 15
        while port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not port_open("127.0.0.1", port), "the broker outlived the command that started it"
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_broker_stops_cleanly_on_a_signal(tmp_path: Path, sig: int) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "broker", "--port", str(port), "--data-dir", str(tmp_path / "b")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, "broker did not start"
            time.sleep(0.1)
        data = tmp_path / "b"
        assert data.stat().st_mode & 0o777 == 0o700  # its control file holds the admin API's token
        assert any(data.iterdir())
        process.send_signal(sig)
        assert process.wait(timeout=15) == 0
        assert not port_open("127.0.0.1", port)
        with pytest.raises(ProcessLookupError):
            os.killpg(process.pid, 0)  # the broker's child (noida-db) is gone too
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

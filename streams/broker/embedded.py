"""The embedded broker: noida-db's Kafka service, run as a child process.

noida-db (from PyPI) speaks the Kafka protocol, keeps its log in a data
directory and survives a restart: the default of ``make demo`` and
``borderflow broker``, needing nothing but Python. The tests and the bench
run Apache Kafka (:mod:`streams.broker.apache_kafka`). The embedded broker's known
defects, and how borderflow works around them on it alone, are in
:mod:`streams.defects`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import noida_db

_PR_SET_PDEATHSIG = 1
#: loaded here, not in the child between fork and exec
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def noida_binary() -> Path:
    bundled = Path(noida_db.__file__).parent / "noida-db"
    if bundled.exists():
        return bundled
    found = shutil.which("noida-db")
    if found is None:
        raise FileNotFoundError("noida-db is not installed: run 'make install' (pip install noida-db)")
    return Path(found)


def own_session_and_die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Like ``start_new_session``, and on Linux the broker gets SIGTERM if the process that started it dies.

    Without it a SIGKILLed ``borderflow broker`` (or test run) would leave the broker running.
    """
    os.setsid()
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """Start, wait for, and stop one embedded broker on 127.0.0.1:port."""

    def __init__(self, port: int, data_dir: Path, stdout: IO[bytes] | int | None = subprocess.DEVNULL) -> None:
        self.port = port
        self.data_dir = Path(data_dir)
        self.stdout = stdout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is already in use on 127.0.0.1")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)  # its control file holds the token of the broker's admin API
        # noida-db picks a free port for its control API; only Kafka is enabled.
        self.process = subprocess.Popen(
            [str(noida_binary()), "start", "--only", "kafka", "--kafka-port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=self.stdout,
            stderr=subprocess.STDOUT if self.stdout is not None else None,
            stdin=subprocess.DEVNULL,
            preexec_fn=own_session_and_die_with_parent,  # noqa: PLW1509 - async-signal-safe calls only
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the broker exited with code {self.process.returncode} before it was ready")
            if port_open("127.0.0.1", self.port):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the broker did not listen on port {self.port} within {timeout:.0f}s")

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def wait_quiet(self, still: float = 1.0, timeout: float = 120.0) -> bool:
        """Wait until the broker has used almost no CPU for ``still`` seconds; False if it was still busy at ``timeout``.

        After writes the broker rewrites its whole store (``streams/defects.py``,
        defect 4); whatever runs next on this machine would share the CPU with that.
        """
        assert self.process is not None
        stat = Path(f"/proc/{self.process.pid}/stat")
        ticks_per_second = os.sysconf("SC_CLK_TCK")

        def cpu_seconds() -> float:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks_per_second  # utime + stime

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = cpu_seconds()
            time.sleep(still)
            if cpu_seconds() - before <= 0.05 * still:
                return True
        return False

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the broker's process group, without waiting."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

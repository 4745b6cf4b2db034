"""A ``borderflow worker`` run as a child process: how replay, the bench and the tests start one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def worker_env(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its ``BORDERFLOW_*`` variables, plus ``settings``: nothing leaks in by accident."""
    return {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")} | dict(settings)


class WorkerStopped(RuntimeError):
    pass


@dataclass
class WorkerProcess:
    """One worker process in its own session (so a signal reaches everything it started), its output in ``log``."""

    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    #: what runs the worker: the CLI, or a wrapper around it (tests inject faults so)
    command: tuple[str, ...] = ("-m", "cli", "worker")
    #: the address its web server is reached at
    host: str = "127.0.0.1"
    #: what the Python process is started under (a network namespace's ``ip netns exec``), if anything
    wrapper: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> WorkerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [*self.wrapper, sys.executable, *self.command], env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def exited(self) -> int | None:
        """The exit status if the process has ended, else None."""
        return None if self.process is None else self.process.poll()

    def check_alive(self) -> None:
        code = self.exited()
        if code is not None:
            raise WorkerStopped(f"the worker exited with {code}; its log ({self.log}) ends:\n{self.tail(20)}")

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then wait; SIGKILL if it does not stop in time. The exit status, or None if it had to be killed."""
        if self.process is None:
            return 0
        self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait()

"""Debian's Prometheus and Alertmanager as child processes, and a webhook receiver that records what they deliver.

The Alertmanager runs this repository's ``alertmanager/alertmanager.yml`` with two things changed:
the receivers' webhook URL files point at the test's receiver, and the route timings are seconds
instead of minutes (see :func:`alertmanager_config`). Routes, grouping, inhibition and templates are
the repository's.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams.broker.embedded import free_port
from tests.support import http_get, wait_until

ROOT = Path(__file__).resolve().parent.parent
ALERTMANAGER_DIR = ROOT / "alertmanager"
RULES = ROOT / "prometheus" / "alerts.yml"
#: the route timings the tests run with, in place of the repository's minutes and hours
TEST_ROUTE_TIMINGS = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"}


def binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run make system-deps (Debian package {package})")
    return path


@dataclass
class Server:
    """A child process serving HTTP on a loopback port, its output in ``log``."""

    args: list[str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> Server:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-2000:]
            try:
                return http_get(self.url + "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout, f"{self.args[0]} ready")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prometheus(workdir: Path, config: Path, *extra: str) -> Server:
    """Prometheus on a free loopback port with ``config`` (started by :meth:`Server.start`)."""
    port = free_port()
    args = [
        binary("prometheus", "prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        *extra,
    ]
    return Server(args, port, workdir / "prometheus.log")


def prom_query(url: str, expr: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}", timeout=10) as response:  # noqa: S310
        body = orjson.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def prom_alerts(url: str) -> list[dict[str, Any]]:
    """Prometheus's pending and firing alerts, with their labels and expanded annotations."""
    with urllib.request.urlopen(url + "/api/v1/alerts", timeout=10) as response:  # noqa: S310
        alerts: list[dict[str, Any]] = orjson.loads(response.read())["data"]["alerts"]
    return alerts


def alertmanager_config(receiver_url: str, workdir: Path) -> Path:
    """The repository's Alertmanager configuration, delivering to ``receiver_url`` on the test's timings."""
    config = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text())
    config["templates"] = [str(ALERTMANAGER_DIR / pattern) for pattern in config["templates"]]
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for key, value in TEST_ROUTE_TIMINGS.items():
            if key in route or route is config["route"]:
                route[key] = value
        routes.extend(route.get("routes", []))
    for receiver in config["receivers"]:
        for slack in receiver.get("slack_configs", []):
            url_file = workdir / Path(slack["api_url_file"]).name
            url_file.write_text(f"{receiver_url}/{receiver['name']}\n")
            slack["api_url_file"] = str(url_file)
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager(workdir: Path, receiver_url: str) -> Server:
    """Alertmanager on a free loopback port, without clustering (started by :meth:`Server.start`)."""
    port = free_port()
    args = [
        binary("prometheus-alertmanager", "prometheus-alertmanager"),
        f"--config.file={alertmanager_config(receiver_url, workdir)}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return Server(args, port, workdir / "alertmanager.log")


@dataclass
class Notification:
    """One message Alertmanager posted: which receiver, when, and the Slack-format attachment it carried."""

    receiver: str
    received: float
    title: str
    text: str
    color: str

    @property
    def status(self) -> str:
        return "resolved" if self.title.startswith("[RESOLVED]") else "firing"

    def alertname(self) -> str:
        return self.title.split("] ", 1)[1].split(" ", 1)[0]


@dataclass
class Receiver:
    """An HTTP server on a loopback port that records every notification posted to ``/<receiver name>``."""

    notifications: list[Notification] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Receiver:
        received = self.notifications
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    for attachment in body["attachments"]:
                        received.append(
                            Notification(
                                self.path.strip("/"), time.monotonic(), attachment["title"], attachment["text"], attachment["color"]
                            )
                        )
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def of(self, alertname: str, status: str | None = None) -> list[Notification]:
        return [n for n in list(self.notifications) if n.alertname() == alertname and (status is None or n.status == status)]

"""The demo, headless, for a bounded time: live metrics, then a clean exit with nothing left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from streams.broker.embedded import free_port
from tests.support import http_get

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(bool(os.environ.get("BORDERFLOW_KAFKA")), reason="the demo runs its own embedded broker")
def test_demo_serves_live_crossings_and_exits_cleanly(tmp_path: Path) -> None:
    port, web_port, prometheus_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "demo",
            "--port",
            str(port),
            "--web-port",
            str(web_port),
            "--prometheus-port",
            str(prometheus_port),
            "--duration",
            "40",
            "--headless",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        crossings = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not crossings:
            time.sleep(2)
            try:
                status, text = http_get(f"http://127.0.0.1:{web_port}/metrics", timeout=3)
            except OSError:
                continue
            crossings = [line for line in str(text).splitlines() if line.startswith("borderflow_crossings{") and not line.endswith(" 0.0")]
        assert crossings, "no nonzero borderflow_crossings series"
        scraped: list[object] = []
        while time.monotonic() < deadline + 20 and not scraped:
            time.sleep(2)
            query = "sum by (border) (borderflow_crossings)"
            try:
                status, body = http_get(f"http://127.0.0.1:{prometheus_port}/api/v1/query?query={urllib.parse.quote(query)}", timeout=3)
            except OSError:
                continue
            scraped = body["data"]["result"] if status == 200 else []
        assert scraped, "the demo's Prometheus has no borderflow_crossings"
        page = urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=5)  # noqa: S310 - the demo's own worker
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html") and b"borderflow" in page.read()
        out, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, out.decode(errors="replace")[-2000:]
    assert out.splitlines()[0].decode() == f"Operations console: http://127.0.0.1:{web_port}/"
    assert b"Top checkpoints" in out and f"Prometheus: http://127.0.0.1:{prometheus_port}".encode() in out
    state = re.search(rb"(/\S*borderflow-demo-[A-Za-z0-9_]+)", out)
    assert state is not None and not Path(state.group(1).decode()).exists(), "the demo left its state directory behind"
    for pattern in (f"--kafka-port {port}", f"127.0.0.1:{prometheus_port}"):
        leftovers = subprocess.run(["pgrep", "-f", pattern], capture_output=True, check=False).stdout
        assert not leftovers.strip(), pattern
    time.sleep(1)
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{web_port}/health", timeout=2)

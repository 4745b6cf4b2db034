"""``borderflow demo``: broker, topics, worker, the September 2022 simulation, and a live view."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from streams.broker.embedded import EmbeddedBroker, port_open
from streams.tools.simulation import CHECKPOINTS

COUNTRIES = ("GE", "KZ", "FI", "MN", "RU")


def _get(url: str) -> Any:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback URL we built
        return orjson.loads(response.read())


def _metric_lines(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("borderflow_events_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            out[outcome] = out.get(outcome, 0) + float(line.rsplit(" ", 1)[1])
    return out


def _view(url: str) -> Group:
    borders = Table(title="Top checkpoints, last 24 h of stream time")
    borders.add_column("checkpoint")
    borders.add_column("24 h", justify="right")
    rows = []
    for point in CHECKPOINTS:
        windows = _get(f"{url}/counts/borders/{point.border}?window=24h")["windows"]
        rows.append((windows[-1]["count"] if windows else 0, point.border))
    for count, border in sorted(rows, reverse=True):
        borders.add_row(border, f"{count:,}")
    countries = Table(title="Countries, all time")
    for name in ("country", "entries", "departures", "net inflow"):
        countries.add_column(name, justify="right")
    for country in COUNTRIES:
        windows = _get(f"{url}/net-inflow/{country}?window=all")["windows"]
        e, d = (windows[0]["entries"], windows[0]["departures"]) if windows else (0, 0)
        countries.add_row(country, f"{e:,}", f"{d:,}", f"{e - d:,}")
    statements = Table(title="Statements against observed events")
    for name in ("source", "metric", "stated", "observed", "ratio"):
        statements.add_column(name)
    for item in _get(f"{url}/statements")["statements"]:
        ratio = item.get("ratio")
        statements.add_row(
            item["source"],
            f"{item['metric']} {item['country']}",
            f"{item['value']:,}",
            "-" if item["observed"] is None else f"{item['observed']:,}",
            "-" if ratio is None else f"{ratio:.2f}",
        )
    outcomes = _metric_lines(url)
    summary = "events: " + ", ".join(f"{k} {int(v):,}" for k, v in sorted(outcomes.items()))
    return Group(borders, countries, statements, summary)


def _start_prometheus(binary: str, port: int, web_port: int, workdir: Path) -> subprocess.Popen[bytes]:
    """Prometheus on loopback scraping the demo's worker every 2 s, with the project's alert rules."""
    rules = Path(__file__).resolve().parent.parent / "prometheus" / "alerts.yml"
    config = {
        "global": {"scrape_interval": "2s", "evaluation_interval": "10s"},
        "rule_files": [str(rules)] if rules.exists() else [],
        "scrape_configs": [{"job_name": "borderflow", "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}]}],
    }
    path = workdir / "prometheus.yml"
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    log = (workdir / "prometheus.log").open("wb")
    return subprocess.Popen(
        [binary, f"--config.file={path}", f"--storage.tsdb.path={workdir / 'prometheus'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@click.command()
@click.option(
    "--port", envvar="BORDERFLOW_BROKER_PORT", default=9092, show_default=True, type=int, help="Broker port [BORDERFLOW_BROKER_PORT]"
)
@click.option(
    "--web-port", envvar="BORDERFLOW_WEB_PORT", default=6066, show_default=True, type=int, help="Worker HTTP port [BORDERFLOW_WEB_PORT]"
)
@click.option(
    "--prometheus-port",
    default=9090,
    show_default=True,
    type=int,
    help="Where to start Prometheus, if it is installed (Debian package prometheus); 0 skips it.",
)
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--headless", is_flag=True, help="No live view; print a summary at the end.")
@click.option("--keep-state", is_flag=True, help="Keep the broker's log, the worker's state and its log after the demo stops.")
def demo(port: int, web_port: int, prometheus_port: int, duration: float | None, headless: bool, keep_state: bool) -> None:
    """Run everything on the embedded default and show the surge live (in the terminal, and in the console at the worker's /)."""
    console = Console()
    if port_open("127.0.0.1", port) or port_open("127.0.0.1", web_port):
        raise click.ClickException(f"port {port} or {web_port} is in use: pass --port/--web-port")
    prometheus = shutil.which("prometheus") if prometheus_port else None
    if prometheus and port_open("127.0.0.1", prometheus_port):
        console.print(f"port {prometheus_port} is in use: not starting Prometheus (pass --prometheus-port)")
        prometheus = None
    workdir = Path(tempfile.mkdtemp(prefix="borderflow-demo-"))
    broker = EmbeddedBroker(port=port, data_dir=workdir / "broker")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    env |= {
        "BORDERFLOW_KAFKA": broker.bootstrap,
        "BORDERFLOW_WEB_PORT": str(web_port),
        "BORDERFLOW_DATA_DIR": str(workdir / "state"),
        "BORDERFLOW_APP_ID": "borderflow-demo",
    }
    url = f"http://127.0.0.1:{web_port}"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        console.print(f"Operations console: {url}/")
        console.print(f"starting the embedded broker on {broker.bootstrap} (state in {workdir})")
        broker.start()
        subprocess.run([sys.executable, "-m", "cli", "topics"], env=env, check=True, stdout=subprocess.DEVNULL)
        log = (workdir / "worker.log").open("wb")
        processes.append(subprocess.Popen([sys.executable, "-m", "cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT))
        processes.append(subprocess.Popen([sys.executable, "-m", "cli", "simulate", "--quiet"], env=env, stdout=subprocess.DEVNULL))
        if prometheus:
            processes.append(_start_prometheus(prometheus, prometheus_port, web_port, workdir))
            console.print(
                f"Prometheus: http://127.0.0.1:{prometheus_port} (alert rules loaded; try sum by (border) (borderflow_crossings))"
            )
        console.print(f"HTTP API: {url}/counts/borders/upper-lars?window=24h   metrics: {url}/metrics   Ctrl-C stops")
        deadline = None if duration is None else time.monotonic() + duration
        if headless:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(1)
            console.print(_view(url))
            return
        with Live(console=console, refresh_per_second=1, screen=False) as live:
            while deadline is None or time.monotonic() < deadline:
                try:
                    live.update(_view(url))
                except OSError:
                    live.update("waiting for the worker...")
                time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        broker.stop()
        if keep_state:
            console.print(f"state kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

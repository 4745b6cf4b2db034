"""``make screenshots``: the console of a demo run, in Debian's Chromium, saved as docs/img/console.png.

Chromium is driven by Playwright (a development dependency) with the
executable given: Playwright's own browser download is not needed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

import orjson

from streams.broker.embedded import free_port

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page

CHROMIUM: Final = "/usr/bin/chromium"
#: every run of the browser: headless, no sandbox (it may run as root), nothing fetched in the background
CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: the September 2022 exodus, as the picture in the README shows it
SEPTEMBER: Final = "?start=2022-09-14T00:00:00Z&end=2022-10-01T00:00:00Z"
PROJECT: Final = Path(__file__).resolve().parents[2]


@contextmanager
def chromium_page(profile: Path, width: int = 1600, height: int = 1200) -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page with a fresh profile in ``profile``, and the script and console errors it reports.

    Playwright's synchronous API runs an event loop in this thread, so no
    ``asyncio.run`` may happen inside the block.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS), headless=True, viewport={"width": width, "height": height}
        )
        page = context.new_page()
        problems: list[str] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                problems.append(f"console: {message.text}")

        page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
        page.on("console", on_console)
        try:
            yield page, problems
        finally:
            context.close()


def wait_drawn(page: Page, timeout: float = 60) -> None:
    """Until the console has drawn everything once (polled: its policy forbids the eval that wait_for_function needs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate("() => Boolean(window.borderflowConsole && window.borderflowConsole.refreshes >= 1)"):
            return
        page.wait_for_timeout(200)
    error = page.evaluate("() => window.borderflowConsole && window.borderflowConsole.error")
    raise TimeoutError(f"the console never finished drawing: {error}")


def _accepted(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url + "/overview", timeout=5) as response:  # noqa: S310 - the demo's own worker
            overview = orjson.loads(response.read())
    except OSError:
        return None
    workers = overview["workers"]
    if not workers or not all(w.get("ready") for w in workers):
        return None
    return sum(n for w in workers for outcomes in w.get("events", {}).values() for n in outcomes.values())


def wait_settled(url: str, timeout: float, quiet: float = 6.0) -> float:
    """Until the worker has counted the simulation: events counted, and no more for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        seen = _accepted(url)
        if seen != last:
            last, since = seen, time.monotonic()
            print(f"  events counted so far: {0 if seen is None else int(seen):,}", flush=True)
        elif seen and time.monotonic() - since >= quiet:
            return seen
        time.sleep(1)
    raise TimeoutError(f"the demo's worker at {url} did not settle within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=PROJECT / "docs" / "img" / "console.png")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the simulation to be counted")
    args = parser.parse_args(argv)
    port, web_port = free_port(), free_port()
    url = f"http://127.0.0.1:{web_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BORDERFLOW_")}
    command = [
        sys.executable,
        "-m",
        "cli",
        "demo",
        "--headless",
        "--port",
        str(port),
        "--web-port",
        str(web_port),
        "--prometheus-port",
        "0",
    ]
    print(f"starting the demo ({' '.join(command[2:])})", flush=True)
    demo = subprocess.Popen(command, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        counted = wait_settled(url, args.timeout)
        print(f"counted {int(counted):,} events; opening {url}/{SEPTEMBER} in Chromium", flush=True)
        with tempfile.TemporaryDirectory(prefix="borderflow-chromium-") as profile, chromium_page(Path(profile)) as (page, problems):
            page.goto(url + "/" + SEPTEMBER)
            wait_drawn(page)
            page.wait_for_timeout(500)  # the last chart's first frame
            if problems:
                raise RuntimeError(f"the console reported problems: {problems}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
        print(f"wrote {args.out}", flush=True)
    finally:
        demo.send_signal(signal.SIGINT)  # the demo stops its worker and broker and removes its state
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The operations console: a read-only page on every worker, drawn from the public HTTP API.

The page (``/``) and its assets (``/console/...``) are files shipped in the
package, the chart library among them (uPlot, vendored with its licence:
``static/vendor/uplot/VENDORED.md``), so it works with no internet. Its
numbers come from the contract's JSON routes, which every worker answers for
the whole cluster, plus ``/overview``: the checkpoints and countries that
have counts, and each worker's health, gathered from every worker. Nothing
here keeps state of its own.

Event fields reach the page only as JSON and are written into it as text
(never as markup), and the page forbids inline scripts and every other
origin (:data:`SECURITY_HEADERS`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import faust
import orjson
from faust.web import Request, Response, View

from events.checkpoints import registered
from events.times import format_utc
from streams.core.records import SeriesCode
from streams.engine import metrics
from streams.engine.partitions import NotReady
from streams.engine.runtime import Runtime
from streams.web.access import CONTENT_SECURITY_POLICY
from streams.web.cluster import INTERNAL_OVERVIEW, Cluster

CONSOLE_DIR: Final = Path(__file__).resolve().parent / "static"
UPLOT_VERSION: Final = "1.6.30"
#: URL path under /console/ -> (file under CONSOLE_DIR, media type): nothing else is served
ASSETS: Final = {
    "console.js": ("console.js", "text/javascript"),
    "console.css": ("console.css", "text/css"),
    "uplot.js": ("vendor/uplot/uPlot.iife.min.js", "text/javascript"),
    "uplot.css": ("vendor/uplot/uPlot.min.css", "text/css"),
    "uplot-license.txt": ("vendor/uplot/LICENSE", "text/plain"),
}
#: scripts and data from this worker only; no inline script, no frames, no plugins
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def local_overview(app: faust.App, runtime: Runtime) -> dict[str, Any]:
    """This worker's part of ``/overview``: readiness, partitions, inputs, counters and the keys it has counts for."""
    try:
        readings = runtime.partitions.readings()
    except NotReady:
        readings = []
    borders: set[str] = set()
    countries: set[str] = set()
    names: dict[str, str] = {}
    for reading in readings:
        names.update((slug, point.name) for slug, point in reading.registrations.items())
        for series_code, key in reading.keys():
            (borders if series_code == SeriesCode.BORDER else countries).add(key)
        countries.update(item["country"] for item in reading.statements())
    unavailable = runtime.partitions.unavailable()
    return {
        "worker": str(app.conf.canonical_url).rstrip("/"),
        "ready": unavailable is None,
        **({} if unavailable is None else {"error": unavailable}),
        "partitions": sorted(runtime.partitions.owned()),
        "inputs": metrics.STATE.inputs(),
        **metrics.counter_totals(),
        "borders": sorted(borders),
        "countries": sorted(countries),
        "registered": names,
    }


def overview_of(workers: list[dict[str, Any]], window_names: list[str]) -> dict[str, Any]:
    """The whole cluster's overview from each worker's part."""
    borders = sorted({b for w in workers for b in w.get("borders", ())})
    countries = sorted({c for w in workers for c in w.get("countries", ())})
    parts = [{k: v for k, v in w.items() if k not in ("borders", "countries", "registered")} for w in workers]
    names = {slug: point.name for slug, point in registered().items()}
    for worker in workers:  # registered at run time: each in the partition that counts its checkpoint
        names.update(worker.get("registered", {}))
    checkpoints = {b: {"name": names[b], "registered": True} if b in names else {"name": b, "registered": False} for b in borders}
    return {
        "generated_at": format_utc(time.time()),
        "windows": window_names,
        "borders": borders,
        "checkpoints": checkpoints,
        "countries": countries,
        "workers": parts,
    }


def install_console(app: faust.App, runtime: Runtime, cluster: Cluster, window_names: list[str]) -> None:
    """``/`` (the page), ``/console/{asset}``, ``/overview``, and the internal route each worker answers for it."""
    page = (CONSOLE_DIR / "index.html").read_bytes()
    assets = {name: ((CONSOLE_DIR / file).read_bytes(), media) for name, (file, media) in ASSETS.items()}

    @app.page("/")
    class Console(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(page, content_type="text/html", headers=dict(SECURITY_HEADERS))

    @app.page("/console/{asset}")
    class Asset(View):
        async def get(self, request: Request, asset: str) -> Response:
            found = assets.get(asset)
            if found is None:
                return self.bytes(b"not found", content_type="text/plain", status=404, headers=dict(SECURITY_HEADERS))
            return self.bytes(found[0], content_type=found[1], headers=dict(SECURITY_HEADERS))

    @app.page("/overview")
    class Overview(View):
        async def get(self, request: Request) -> Response:
            workers = [local_overview(app, runtime), *await cluster.overviews()]
            body = overview_of(workers, window_names)
            return self.bytes(orjson.dumps(body), content_type="application/json", headers={"Cache-Control": "no-cache"})

    @app.page(INTERNAL_OVERVIEW)
    class LocalOverview(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(orjson.dumps(local_overview(app, runtime)), content_type="application/json")

    del Console, Asset, Overview, LocalOverview

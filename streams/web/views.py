"""The worker's routes: the contract's queries, ingest, and the internal routes workers and replay use."""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streams.core.ownership import Incomplete
from streams.core.queries import WindowQuery, net_inflow_windows, windows_of
from streams.core.reading import PartitionReading
from streams.core.records import SeriesCode
from streams.engine import metrics
from streams.engine.partitions import NotReady
from streams.engine.runtime import Runtime
from streams.settings import Settings
from streams.web.cluster import (
    INTERNAL_OFFSETS,
    INTERNAL_PARTIALS,
    INTERNAL_SEEN,
    INTERNAL_SNAPSHOT,
    INTERNAL_STATEMENTS,
    STANDBY_PARAMETER,
    Cluster,
    local_partials,
    local_seen,
    local_snapshots,
    local_statements,
    owner_envelope,
)
from streams.web.console import install_console
from streams.web.ingest import Ingest
from streams.web.ingest_body import BodyError, media_type
from streams.web.parameters import BadParameter, seen_request, snapshot_request, window_query


class StateView(View):
    """A view that reads the state: 503 with the reason while this worker, or a peer it asks, is recovering.

    A cluster-wide answer some partitions are missing from is a 503 naming them and why.
    """

    async def dispatch(self, request: Any) -> Any:
        try:
            return await super().dispatch(request)
        except NotReady as exc:
            return _json(self, {"error": str(exc), "status": "recovering"}, 503)
        except Incomplete as exc:
            body = {"error": str(exc), "status": "incomplete", "missing_partitions": exc.missing, "workers": exc.reasons}
            return _json(self, body, 503)


def with_standbys(stand_ins: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"standby": [...]}`` when some partitions were read from standby replicas (docs/contract.md), else nothing."""
    return {"standby": stand_ins} if stand_ins else {}


def _json(view: View, body: Any, status: int = 200) -> Response:
    return view.bytes(orjson.dumps(body), content_type="application/json", status=status)


def _install_queries(app: faust.App, settings: Settings, runtime: Runtime, cluster: Cluster) -> None:
    config = settings.core()

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            described = runtime.describe()
            ok = "reason" not in described
            return _json(self, {"status": "ready" if ok else "unavailable", **described}, 200 if ok else 503)

    @app.page("/livez")
    class Live(View):
        async def get(self, request: Request) -> Response:
            return _json(self, {"status": "alive"}, 200)

    exposition = metrics.Exposition()

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(await exposition.latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    def query_of(request: Request) -> WindowQuery:
        return window_query(config, request.query.get("window"), request.query.get("start"), request.query.get("end"))

    async def counts(view: View, request: Request, label: str, series_code: str, key: str) -> Response:
        try:
            query = query_of(request)
        except BadParameter as exc:
            return _json(view, {"error": str(exc), "parameter": exc.name}, 400)
        got, stand_ins = await cluster.partials([(series_code, key)])
        windows = windows_of(got[f"{series_code}:{key}"], query, config)
        return _json(view, {label: key, "window": query.spec.name, "windows": windows} | with_standbys(stand_ins))

    @app.page("/counts/borders/{border}")
    class BorderCounts(StateView):
        async def get(self, request: Request, border: str) -> Response:
            return await counts(self, request, "border", SeriesCode.BORDER, border)

    @app.page("/counts/countries/{country}")
    class CountryCounts(StateView):
        async def get(self, request: Request, country: str) -> Response:
            return await counts(self, request, "country", SeriesCode.ENTRIES, country)

    @app.page("/net-inflow/{country}")
    class NetInflow(StateView):
        async def get(self, request: Request, country: str) -> Response:
            try:
                query = query_of(request)
            except BadParameter as exc:
                return _json(self, {"error": str(exc), "parameter": exc.name}, 400)
            got, stand_ins = await cluster.partials([(SeriesCode.ENTRIES, country), (SeriesCode.DEPARTURES, country)])
            windows = net_inflow_windows(got[f"{SeriesCode.ENTRIES}:{country}"], got[f"{SeriesCode.DEPARTURES}:{country}"], query, config)
            return _json(self, {"country": country, "window": query.spec.name, "windows": windows} | with_standbys(stand_ins))

    @app.page("/statements")
    class Statements(StateView):
        async def get(self, request: Request) -> Response:
            country = request.query.get("country") or None
            return _json(self, {"statements": await cluster.statements(country)})

    @app.page(INTERNAL_PARTIALS)
    class Partials(StateView):
        async def get(self, request: Request) -> Response:
            names: list[str] = request.query.getall("series", [])  # type: ignore[attr-defined]  # aiohttp MultiDict
            wanted = [(series_code, key) for series_code, _, key in (name.partition(":") for name in names)]

            def encoded(readings: list[PartitionReading]) -> dict[str, Any]:
                body = local_partials(readings, wanted)
                return {
                    name: [{**p, "buckets": {str(b): c for b, c in p["buckets"].items()}} for p in parts] for name, parts in body.items()
                }

            standby = encoded if request.query.get(STANDBY_PARAMETER) else None
            return _json(self, await owner_envelope(runtime, cluster.me, lambda: encoded(runtime.partitions.readings()), standby))

    @app.page(INTERNAL_STATEMENTS)
    class LocalStatements(StateView):
        async def get(self, request: Request) -> Response:
            return _json(self, await owner_envelope(runtime, cluster.me, lambda: local_statements(runtime)))

    del Health, Metrics, BorderCounts, CountryCounts, NetInflow, Statements, Partials, LocalStatements


def _install_ingest(app: faust.App, runtime: Runtime, cluster: Cluster, ingest: Ingest) -> None:
    @app.page("/events")
    class Events(View):
        async def post(self, request: Request) -> Response:
            status, body = await self._answer(request)
            metrics.INGEST_REQUESTS.labels(code=str(status)).inc()
            headers = {"WWW-Authenticate": 'Bearer realm="borderflow"'} if status == 401 else None
            response = _json(self, body, status)
            if headers:
                response.headers.update(headers)
            return response

        async def _answer(self, request: Request) -> tuple[int, dict[str, Any]]:
            try:
                refused = ingest.authorize(request.headers.get("Authorization"))
                if refused is not None:
                    raise refused
                body_format = media_type(request.headers.get("Content-Type"))
                body = await ingest.read(request.content_length, request.content.read)  # type: ignore[attr-defined]  # aiohttp
                return await ingest.handle(body_format, body)
            except BodyError as exc:
                return exc.status, exc.body()

    @app.page(INTERNAL_SEEN)
    class Seen(StateView):
        async def post(self, request: Request) -> Response:
            try:
                wanted = seen_request(await request.read())
            except BadParameter as exc:
                return _json(self, {"error": str(exc), "parameter": exc.name}, 400)
            return _json(self, await owner_envelope(runtime, cluster.me, lambda: sorted(local_seen(runtime.partitions.readings(), wanted))))

    del Events, Seen


def _install_replay_views(app: faust.App, runtime: Runtime, cluster: Cluster) -> None:
    """Offsets and snapshots at an offset, which ``borderflow replay --verify`` compares."""

    @app.page(INTERNAL_OFFSETS)
    class Offsets(StateView):
        async def get(self, request: Request) -> Response:
            if request.query.get("all"):
                return _json(self, await cluster.offsets())
            return _json(self, await owner_envelope(runtime, cluster.me, runtime.partitions.offsets))

    @app.page(INTERNAL_SNAPSHOT)
    class Snapshot(StateView):
        async def get(self, request: Request) -> Response:
            try:
                wanted, wait = snapshot_request(request.query.getall("at", []), request.query.get("wait"))  # type: ignore[attr-defined]  # aiohttp MultiDict
            except BadParameter as exc:
                return _json(self, {"error": str(exc), "parameter": exc.name}, 400)
            if request.query.get("all"):
                return _json(self, await cluster.snapshots(wanted, wait))
            return _json(self, await local_snapshots(runtime, wanted, wait))

    del Offsets, Snapshot


def install_routes(app: faust.App, settings: Settings, runtime: Runtime, cluster: Cluster, ingest: Ingest) -> None:
    """Every route of the worker's web server (who may call which: streams/web/access.py)."""
    _install_queries(app, settings, runtime, cluster)
    _install_ingest(app, runtime, cluster, ingest)
    _install_replay_views(app, runtime, cluster)
    install_console(app, runtime, cluster, [spec.name for spec in settings.core().windows])

"""Who may call what on a worker's web server.

The contract's routes (health, metrics, counts, net inflow, statements, the
console) are public; ``POST /events`` checks the ingest token itself. Every
other route is one that workers and borderflow's own tools use among
themselves (partials, statements, seen ids, offsets, snapshots, and any
route the engine adds). Those need the **cluster secret**
(``BORDERFLOW_CLUSTER_TOKEN``, or the ingest token when none is set) as a
bearer token whenever one is configured. Without one they are served only on
a loopback address: on any other address they answer 403 and name the fix.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web

from streams.settings import Settings
from streams.web.limits import ClientLimits, retry_after

log = logging.getLogger(__name__)

#: the policy of every HTML page: scripts and data from this worker only; no inline script, no frames, no plugins
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

#: refused requests whose answer is held back at once: past this, refusals are answered immediately
MAX_HELD_REFUSALS: Final = 512
#: how long a refusal is held back: a caller that retries at once then asks once a second, not as fast as it can
REFUSAL_HOLD_SECONDS: Final = 1.0

#: method and path of the contract's routes, which anyone may call
#: the probes' routes: never limited, so that no flood of callers can fail a probe and have the worker restarted
PROBES: Final = frozenset({"/health", "/livez"})
PUBLIC_ROUTES: Final = (
    ("GET", re.compile(r"/(health|livez|metrics|statements|overview)?")),
    ("GET", re.compile(r"/console/[\w.-]+")),  # the console's own files
    ("GET", re.compile(r"/counts/(borders|countries)/[^/]+")),
    ("GET", re.compile(r"/net-inflow/[^/]+")),
    ("POST", re.compile(r"/events")),  # checks the ingest token itself
)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cluster_secret(settings: Settings) -> str | None:
    return settings.cluster_token or settings.ingest_token or None


def bearer_matches(header: str | None, secret: str) -> bool:
    """Whether ``header`` is ``Bearer <secret>``, compared in constant time (any bytes in the header are fine)."""
    scheme, _, given = (header or "").partition(" ")
    # aiohttp decodes header bytes that are not UTF-8 as surrogates: keep them as bytes, never raise
    offered = given.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(offered, secret.encode())


def cluster_headers(settings: Settings) -> dict[str, str]:
    """What a worker or tool sends with a request to another worker's internal routes."""
    secret = cluster_secret(settings)
    return {} if secret is None else {"Authorization": f"Bearer {secret}"}


def is_public(method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    return any(method == allowed and pattern.fullmatch(path) for allowed, pattern in PUBLIC_ROUTES)


class AccessPolicy:
    def __init__(self, settings: Settings) -> None:
        self.secret = cluster_secret(settings)
        #: what one caller without the cluster secret may take of the public routes
        #: refusals being held back now (access_middleware)
        self.held = 0
        self.limits = ClientLimits(
            settings.client_rate,
            settings.client_burst,
            settings.client_concurrency,
            settings.clients_concurrency,
            total_rate=settings.clients_rate,
            total_burst=settings.clients_burst,
        )
        self.refusal: str | None = None
        if self.secret is None and not is_loopback(settings.web_host):
            self.refusal = (
                f"worker-to-worker routes are disabled: the worker listens on {settings.web_host} (not loopback) and neither "
                "BORDERFLOW_CLUSTER_TOKEN nor BORDERFLOW_INGEST_TOKEN is set. Set BORDERFLOW_CLUSTER_TOKEN on every worker "
                "(queries for keys owned by other workers fail until then), or bind BORDERFLOW_WEB_HOST to 127.0.0.1."
            )

    def limited(self, method: str, path: str, authorization: str | None) -> bool:
        """Whether the request counts against its caller's limits: a public route other than the probes', without the secret.

        The other routes need the cluster secret (or, with none set, are served on loopback only) and serve
        other workers and borderflow's own tools.
        """
        if path in PROBES or not is_public(method, path):
            return False
        return self.secret is None or not bearer_matches(authorization, self.secret)

    def check(self, method: str, path: str, authorization: str | None) -> tuple[int, dict[str, Any]] | None:
        """None if the request may go on; otherwise the status and body to answer with."""
        if is_public(method, path):
            return None
        if self.refusal is not None:
            return 403, {"error": self.refusal, "field": "BORDERFLOW_CLUSTER_TOKEN"}
        if self.secret is not None and not bearer_matches(authorization, self.secret):
            return 401, {"error": "this route is for borderflow's workers: missing or wrong cluster token", "field": "Authorization"}
        return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def access_middleware(policy: AccessPolicy) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        refused = policy.check(request.method, request.path, authorization)
        if refused is not None:
            status, body = refused
            headers = {"WWW-Authenticate": 'Bearer realm="borderflow-cluster"'} if status == 401 else {}
            return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)
        if not policy.limited(request.method, request.path, authorization):
            return await handler(request)
        client = request.remote or "unknown"
        # /metrics is written off the loop and reused, and Prometheus must keep scraping through a flood of queries
        wait = policy.limits.admit(client, shared=request.path != "/metrics")
        if wait is not None:
            return await _refuse(policy, client, wait)
        try:
            return await handler(request)
        finally:
            policy.limits.done(client)

    return guard


async def _refuse(policy: AccessPolicy, client: str, wait: float) -> web.Response:
    """429 with ``Retry-After``, held back a second first (while few are held).

    A caller that asks again as soon as it is refused would keep the loop busy
    refusing it; holding its answer costs an idle connection, not the loop.
    """
    if policy.held < MAX_HELD_REFUSALS:
        policy.held += 1
        try:
            await asyncio.sleep(REFUSAL_HOLD_SECONDS)
        finally:
            policy.held -= 1
    why = f"too many requests from {client}, or from all callers without the cluster token together"
    body = {"error": f"{why}: retry after the seconds in Retry-After", "status": "limited"}
    return web.Response(body=orjson.dumps(body), status=429, content_type="application/json", headers={"Retry-After": retry_after(wait)})


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response, whichever route, middleware or error made it (aiohttp's ``on_response_prepare``).

    ``nosniff``: a browser takes a JSON, text or metrics answer for what its
    type says, never for a page or a script, even when an event's text in it
    looks like markup. An HTML page also gets the content security policy.
    """
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)

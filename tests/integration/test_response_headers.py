"""Every answer of a worker says nosniff, whichever route or refusal made it; every HTML page carries the CSP."""

from __future__ import annotations

import urllib.error
import urllib.request
from email.message import Message
from typing import Any

import pytest

from tests.factories import create_topics
from tests.support import INGEST_TOKEN

pytestmark = pytest.mark.integration
CLUSTER_TOKEN = "cluster-" + "y" * 24


def answer(url: str, method: str = "GET", token: str | None = None, body: bytes | None = None) -> tuple[int, Message]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - a loopback worker
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/x-ndjson")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - a loopback worker
            response.read()
            return response.status, response.headers
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, error.headers


def test_every_kind_of_answer_says_nosniff_and_pages_carry_the_policy(deployment: dict[str, str], spawn_worker: Any) -> None:
    create_topics(deployment)
    worker = spawn_worker(BORDERFLOW_INGEST_TOKEN=INGEST_TOKEN, BORDERFLOW_CLUSTER_TOKEN=CLUSTER_TOKEN)
    worker.wait_ready()
    url = worker.url
    cases = [
        ("console page", "GET", "/", None, None, 200),
        ("console file", "GET", "/console/console.js", None, None, 200),
        ("unknown console file", "GET", "/console/nothing.js", None, None, 404),
        ("health", "GET", "/health", None, None, 200),
        ("metrics", "GET", "/metrics", None, None, 200),
        ("counts", "GET", "/counts/borders/upper-lars?window=1h", None, None, 200),
        ("bad parameter", "GET", "/counts/borders/upper-lars?window=nope", None, None, 400),
        ("net inflow", "GET", "/net-inflow/GE", None, None, 200),
        ("statements", "GET", "/statements", None, None, 200),
        ("overview", "GET", "/overview", None, None, 200),
        ("ingest", "POST", "/events", INGEST_TOKEN, b'{"type": "crossing"}\n', 422),
        ("ingest without token", "POST", "/events", None, b"{}\n", 401),
        ("internal without token", "GET", "/internal/offsets", None, None, 401),
        ("internal", "GET", "/internal/offsets", CLUSTER_TOKEN, None, 200),
        ("unknown path", "GET", "/nothing/here", CLUSTER_TOKEN, None, 404),
        ("wrong method", "DELETE", "/health", CLUSTER_TOKEN, None, 405),
    ]
    for name, method, path, token, body, expected in cases:
        status, headers = answer(url + path, method, token, body)
        assert status == expected, (name, status)
        assert headers.get("X-Content-Type-Options") == "nosniff", (name, dict(headers))
        if headers.get_content_type() == "text/html":
            policy = headers.get("Content-Security-Policy") or ""
            assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, (name, policy)
    _, page = answer(url + "/")
    assert page.get_content_type() == "text/html"

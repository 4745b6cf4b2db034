"""Worker-to-worker routes need the cluster secret; Faust's own routes are off; the contract's routes stay public."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from typing import Any

import orjson
import pytest

from events.times import format_utc
from tests.factories import create_topics, crossing, keyed
from tests.support import H, Model, http_get, produce

pytestmark = pytest.mark.integration
SECRET = "cluster-secret-for-tests"
BORDERS = ["upper-lars", "vaalimaa", "zhaisan", "altanbulag", "syrym", "kairak", "narva", "sarpi"]


def call(url: str, method: str = "GET", token: str | None = None, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 - a loopback worker
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a loopback worker
            return response.status, orjson.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        data = error.read()
        try:
            return error.code, orjson.loads(data)
        except orjson.JSONDecodeError:
            return error.code, data


def raw_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        return int(conn.recv(4096).split(b" ", 2)[1])


def test_internal_routes_need_the_cluster_token_and_engine_routes_are_off(deployment: dict[str, str], spawn_worker: Any) -> None:
    deployment |= {"BORDERFLOW_CLUSTER_TOKEN": SECRET, "BORDERFLOW_INGEST_TOKEN": "ingest-token"}
    create_topics(deployment)
    worker = spawn_worker()
    worker.wait_ready()
    url = worker.url
    internal = [
        ("GET", "/internal/offsets", None),
        ("GET", "/internal/partials?series=b:upper-lars", None),
        ("GET", "/internal/statements", None),
        ("GET", "/internal/snapshot?at=x|0|5&wait=1", None),
        ("POST", "/internal/seen", b'{"crossings": ["a"]}'),
        ("GET", "/router/", None),
        ("GET", "/table/state/", None),
    ]
    for method, path, body in internal:
        assert call(url + path, method, body=body)[0] == 401, path
        assert call(url + path, method, token="ingest-token", body=body)[0] == 401, path  # the cluster token, once set
    assert call(url + "/internal/offsets", token=SECRET)[0] == 200
    assert call(url + "/internal/seen", "POST", token=SECRET, body=b'{"crossings": ["a"]}')[0] == 200
    for path in ("/router/", "/table/state/", "/graph/", "/stats/"):  # Faust's debug routes: off
        assert call(url + path, token=SECRET)[0] == 404, path
    # malformed bodies are refused with the reason, not a 500
    for bad in (b"{", b"[1]", b'{"crossings": "a"}', b'{"crossings": [1]}'):
        status, answer = call(url + "/internal/seen", "POST", token=SECRET, body=bad)
        assert status == 400 and answer["parameter"], bad
    # the contract's routes need no token
    for path in ("/health", "/metrics", "/counts/borders/upper-lars", "/net-inflow/GE", "/statements"):
        assert http_get(url + path)[0] == 200, path
    # an Authorization header that is not UTF-8 is a wrong token, not a server error
    for target in (b"GET /internal/offsets", b"POST /events"):
        request = target + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xc3\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        assert raw_status(worker.port, request) == 401, target


def test_workers_answer_for_each_other_with_the_cluster_token(deployment: dict[str, str], spawn_worker: Any, kafka: str) -> None:
    deployment["BORDERFLOW_CLUSTER_TOKEN"] = SECRET
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    create_topics(deployment)
    messages = [
        keyed(prefix + "crossings", crossing(f"c-{b}-{i}", format_utc(1663754400 + i * 600), b, "RU", "GE", i + 1))
        for b in BORDERS
        for i in range(10)
    ]
    model = Model(partitions=4)
    model.run(messages)
    workers = [spawn_worker("w1"), spawn_worker("w2")]
    for worker in workers:
        worker.wait_ready()
    asyncio.run(produce(kafka, messages))
    expected = {
        b: [{"start": format_utc(h), "end": format_utc(h + H), "count": c} for h, c in sorted(model.hourly("border", b).items())]
        for b in BORDERS
    }
    for worker in workers:
        for _ in range(120):
            status, _ = http_get(worker.url + "/health")
            got = {b: http_get(f"{worker.url}/counts/borders/{b}")[1].get("windows") for b in BORDERS} if status == 200 else None
            if got == expected:
                break
            asyncio.run(asyncio.sleep(0.5))
        assert got == expected, worker.tail()
    owned = [set(http_get(w.url + "/health")[1]["partitions"]) for w in workers]
    assert owned[0] and owned[1] and not owned[0] & owned[1]  # each answered for partitions the other owns

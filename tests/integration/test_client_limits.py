"""One anonymous client cannot take a worker: 429 with Retry-After past its rate or its requests at once; probes and peers pass."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from tests.factories import create_topics

pytestmark = pytest.mark.integration
SECRET = "cluster-secret-for-limit-tests"



def get(url: str, token: str | None = None) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url)  # noqa: S310 - a loopback worker
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - a loopback worker
            return response.status, dict(response.headers), orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), orjson.loads(error.read())


def test_a_flood_from_one_client_gets_429_with_retry_after_and_nobody_else_does(deployment: dict[str, str], spawn_worker: Any) -> None:
    deployment |= {
        "BORDERFLOW_CLUSTER_TOKEN": SECRET,
        "BORDERFLOW_CLIENT_RATE": "5",
        "BORDERFLOW_CLIENT_BURST": "10",
        "BORDERFLOW_CLIENT_CONCURRENCY": "4",
    }
    create_topics(deployment)
    worker = spawn_worker("w1")
    worker.wait_ready()
    query = worker.url + "/counts/borders/upper-lars?window=1h"

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: get(query), range(120)))
    elapsed = time.monotonic() - started  # refusals are held a second each, so the flood lasts a few seconds
    statuses = [status for status, _, _ in answers]
    assert set(statuses) <= {200, 429}, statuses
    assert 0 < statuses.count(200) <= 10 + 5 * elapsed + 1, (statuses.count(200), elapsed)  # the burst, then the rate
    limited = [(headers, body) for status, headers, body in answers if status == 429]
    assert limited
    for headers, body in limited:
        assert int(headers["Retry-After"]) >= 1 and body["status"] == "limited" and "Retry-After" in body["error"]
        assert headers["Content-Type"].startswith("application/json") and headers["X-Content-Type-Options"] == "nosniff"

    # meanwhile probes, and other workers or borderflow's tools (the cluster secret), are never limited
    assert all(get(worker.url + "/health")[0] == 200 for _ in range(30))
    lives = [get(worker.url + "/livez") for _ in range(30)]
    assert all(status == 200 and body == {"status": "alive"} for status, _, body in lives)
    assert all(get(query, token=SECRET)[0] == 200 for _ in range(30))

    # and the client is served again once it waits as it was told
    time.sleep(max(int(headers["Retry-After"]) for headers, _ in limited))
    assert get(query)[0] == 200


def get_from(address: str, url: str) -> int:
    """The status of a GET sent from ``address`` (one of loopback's 127.0.0.0/8): each address is a client of its own."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30, source_address=(address, 0))
    try:
        connection.request("GET", f"{parts.path}?{parts.query}")
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_many_clients_together_get_only_their_share_of_the_worker(deployment: dict[str, str], spawn_worker: Any) -> None:
    deployment |= {
        "BORDERFLOW_CLUSTER_TOKEN": SECRET,
        "BORDERFLOW_CLIENT_RATE": "1000",  # no one client is limited: only what they take together
        "BORDERFLOW_CLIENT_BURST": "1000",
        "BORDERFLOW_CLIENTS_RATE": "20",
        "BORDERFLOW_CLIENTS_BURST": "40",
    }
    create_topics(deployment)
    worker = spawn_worker("w1")
    worker.wait_ready()
    query = worker.url + "/counts/borders/upper-lars?window=1h"
    addresses = [f"127.0.0.{i}" for i in range(2, 42)]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
        statuses = list(pool.map(lambda i: get_from(addresses[i % len(addresses)], query), range(len(addresses) * 12)))
    elapsed = time.monotonic() - started
    assert set(statuses) <= {200, 429}, statuses
    answered = statuses.count(200)
    assert 0 < answered <= 40 + 20 * elapsed + 1, (answered, elapsed)  # the shared burst, then the shared rate
    assert statuses.count(429) > 0
    status, headers, body = get(query)
    while status == 200:  # the shared bucket refills at its rate: take it until refused
        status, headers, body = get(query)
    assert status == 429 and "all callers without the cluster token together" in body["error"] and int(headers["Retry-After"]) >= 1
    assert get(worker.url + "/health")[0] == 200 and get(query, token=SECRET)[0] == 200

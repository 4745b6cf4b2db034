"""Who may call which route (streams/web/access.py): the contract's routes are public, the rest need the cluster secret."""

from __future__ import annotations

import pytest

from streams.settings import Settings
from streams.web.access import AccessPolicy, bearer_matches, cluster_headers, is_public

INTERNAL = [
    ("GET", "/internal/partials"),
    ("GET", "/internal/statements"),
    ("POST", "/internal/seen"),
    ("GET", "/internal/offsets"),
    ("GET", "/internal/snapshot"),
    ("GET", "/router/"),
    ("GET", "/table/state/"),
    ("GET", "/graph/"),
    ("GET", "/stats/"),
    ("GET", "/anything-else"),
    ("POST", "/statements"),
    ("DELETE", "/health"),
    ("GET", "/counts/borders/a/b"),
    ("GET", "/console/../internal/offsets"),
    ("GET", "/console/a/b"),
    ("POST", "/overview"),
]
PUBLIC = [
    ("GET", "/"),
    ("GET", "/health"),
    ("HEAD", "/health"),
    ("GET", "/metrics"),
    ("GET", "/counts/borders/upper-lars"),
    ("GET", "/counts/countries/GE"),
    ("GET", "/net-inflow/KZ"),
    ("GET", "/statements"),
    ("GET", "/overview"),
    ("GET", "/console/console.js"),
    ("GET", "/console/uplot.css"),
    ("POST", "/events"),
]


def settings(**values: str) -> Settings:
    return Settings(**values)  # type: ignore[arg-type]


def test_the_contracts_routes_are_public_and_nothing_else() -> None:
    assert all(is_public(method, path) for method, path in PUBLIC)
    assert not any(is_public(method, path) for method, path in INTERNAL)


def test_without_a_secret_internal_routes_are_served_on_loopback_only() -> None:
    local = AccessPolicy(settings(web_host="127.0.0.1"))
    assert all(local.check(method, path, None) is None for method, path in INTERNAL)
    exposed = AccessPolicy(settings(web_host="0.0.0.0"))  # noqa: S104 - the address under test
    assert exposed.refusal is not None and "BORDERFLOW_CLUSTER_TOKEN" in exposed.refusal
    for method, path in INTERNAL:
        refused = exposed.check(method, path, None)
        assert refused is not None and refused[0] == 403
    assert all(exposed.check(method, path, None) is None for method, path in PUBLIC)


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])  # noqa: S104 - the address under test
def test_with_a_secret_internal_routes_need_it_wherever_the_worker_listens(host: str) -> None:
    policy = AccessPolicy(settings(web_host=host, cluster_token="s3cret"))
    for header in (None, "", "Bearer", "Bearer wrong", "Basic s3cret", "Bearer s3cret-and-more", "Bearer \udcff\udcfe"):
        refused = policy.check("GET", "/internal/offsets", header)
        assert refused is not None and refused[0] == 401, header
    assert policy.check("GET", "/internal/offsets", "Bearer s3cret") is None
    assert policy.check("GET", "/internal/offsets", "bearer  s3cret ") is None
    assert policy.check("GET", "/counts/borders/upper-lars", None) is None


def test_the_ingest_token_is_the_cluster_secret_when_none_is_set() -> None:
    assert cluster_headers(settings(ingest_token="in")) == {"Authorization": "Bearer in"}
    assert cluster_headers(settings(ingest_token="in", cluster_token="cl")) == {"Authorization": "Bearer cl"}
    assert cluster_headers(settings()) == {}
    policy = AccessPolicy(settings(web_host="0.0.0.0", ingest_token="in"))  # noqa: S104 - the address under test
    assert policy.refusal is None and policy.check("POST", "/internal/seen", "Bearer in") is None


def test_a_header_that_is_not_utf8_is_a_mismatch_not_an_error() -> None:
    assert not bearer_matches("Bearer caf\udce9", "café")
    assert not bearer_matches("\udcff", "x")


def test_secrets_stay_out_of_the_settings_repr() -> None:
    text = repr(settings(ingest_token="in-secret", cluster_token="cl-secret"))
    assert "in-secret" not in text and "cl-secret" not in text

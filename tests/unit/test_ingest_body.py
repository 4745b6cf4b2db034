"""The rules of POST /events bodies, without a server."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.settings import Settings
from streams.web.access import is_loopback
from streams.web.ingest import ingest_refusal
from streams.web.ingest_body import BodyError, RecentIds, media_type, parse_body, report
from tests.factories import CROSSING, STATEMENT

LIMIT = 64 * 1024


def ndjson(*objs: object) -> bytes:
    return b"\n".join(orjson.dumps(o) for o in objs) + b"\n"


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("application/json", "json"),
        ("application/json; charset=utf-8", "json"),
        ("application/x-ndjson", "ndjson"),
        ("Application/NDJSON", "ndjson"),
    ],
)
def test_media_types_that_are_read(header: str, kind: str) -> None:
    assert media_type(header) == kind


@pytest.mark.parametrize("header", [None, "", "text/plain", "application/xml", "application/json; charset=latin-1", "multipart/form-data"])
def test_other_media_types_are_415_naming_the_header(header: str | None) -> None:
    with pytest.raises(BodyError) as info:
        media_type(header)
    assert info.value.status == 415 and info.value.field == "Content-Type"


def test_ndjson_lines_are_judged_one_by_one_and_numbered_from_one() -> None:
    body = ndjson(CROSSING, CROSSING | {"event_id": "c-2", "count": 0}) + b"{not json\n\n" + orjson.dumps(STATEMENT)
    lines = parse_body("ndjson", body, max_event_bytes=LIMIT)
    assert [(r.line, r.status) for r in lines] == [(1, "accepted"), (2, "rejected"), (3, "rejected"), (5, "accepted")]
    assert lines[1].error is not None and lines[1].error.field == "count"
    assert lines[2].error is not None and lines[2].error.field == "$" and "invalid JSON" in lines[2].error.reason
    assert lines[0].data == orjson.dumps(CROSSING)


def test_a_json_body_that_is_not_json_is_a_400_but_an_invalid_event_is_one_rejected_line() -> None:
    with pytest.raises(BodyError) as info:
        parse_body("json", b'{"type": "crossing",', max_event_bytes=LIMIT)
    assert info.value.status == 400 and "invalid JSON" in info.value.reason
    (line,) = parse_body("json", orjson.dumps(CROSSING | {"border": "Upper Lars"}), max_event_bytes=LIMIT)
    status, body = report([line])
    assert status == 422
    assert body["field"] == "border" and "slug" in body["reason"] and body["rejected"] == 1


@pytest.mark.parametrize("body", [b"", b"  \n\n "])
def test_an_empty_body_is_a_400(body: bytes) -> None:
    for kind in ("json", "ndjson"):
        with pytest.raises(BodyError) as info:
            parse_body(kind, body, max_event_bytes=LIMIT)
        assert info.value.status == 400


def test_more_events_than_the_line_bound_is_a_413_before_any_is_read() -> None:
    body = b"\n".join(orjson.dumps(CROSSING | {"event_id": f"c-{i}"}) for i in range(11)) + b"\n\n\n"
    assert len(parse_body("ndjson", body, max_event_bytes=65536, max_lines=11)) == 11  # blank lines are not events
    with pytest.raises(BodyError) as info:
        parse_body("ndjson", body, max_event_bytes=65536, max_lines=10)
    assert info.value.status == 413 and "11 lines, at most 10" in info.value.reason


def test_oversize_and_deeply_nested_lines_are_rejected_not_raised() -> None:
    big = orjson.dumps(CROSSING | {"note": "x" * 300})
    deep = b"[" * 100_000 + b"]" * 100_000
    lines = parse_body("ndjson", big + b"\n" + deep, max_event_bytes=256)
    assert [r.status for r in lines] == ["rejected", "rejected"]
    assert lines[0].error is not None and "oversize" in lines[0].error.reason


def test_report_is_202_if_anything_was_accepted_or_already_in_and_422_if_all_rejected() -> None:
    lines = parse_body("ndjson", ndjson(CROSSING, {"type": "crossing"}), max_event_bytes=LIMIT)
    status, body = report(lines)
    assert status == 202 and (body["accepted"], body["duplicate"], body["rejected"]) == (1, 0, 1)
    assert body["results"][1] == {
        "line": 2,
        "status": "rejected",
        "field": "occurred_at",
        "reason": "missing",
        "error": "occurred_at: missing",
    }
    lines[0].status = "duplicate"
    assert report(lines)[0] == 202
    status, body = report(parse_body("ndjson", ndjson({"type": "x"}, [1]), max_event_bytes=LIMIT))
    assert status == 422 and body["field"] == "type" and body["error"].startswith("every line was rejected; line 1: type:")


@settings(max_examples=500)
@given(st.binary(max_size=2000), st.sampled_from(["json", "ndjson"]))
def test_any_bytes_give_line_results_or_a_body_error_never_a_crash(body: bytes, kind: str) -> None:
    try:
        lines = parse_body(kind, body, max_event_bytes=LIMIT)
    except BodyError as exc:
        assert exc.status == 400
        return
    for line in lines:
        assert (line.event is None) == (line.status == "rejected")
        assert line.error is None or line.error.field
    report(lines)


def test_recent_ids_forget_what_is_older_than_the_horizon_and_stay_bounded() -> None:
    recent = RecentIds(horizon=100, capacity=3)
    recent.add("a", 0)
    recent.add("b", 50)
    assert "a" in recent and "b" in recent
    recent.add("c", 150)  # a is now 150 behind the newest
    assert "a" not in recent and "b" in recent
    recent.add("d", 151)
    recent.add("e", 152)
    assert len(recent) == 3 and "b" not in recent
    recent.discard("e")
    assert "e" not in recent


@pytest.mark.parametrize(
    ("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False), ("10.1.2.3", False)]
)  # noqa: S104
def test_ingest_is_refused_on_a_non_loopback_address_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    refusal = ingest_refusal(Settings(web_host=host))
    assert (refusal is None) is loopback
    if refusal:
        assert "BORDERFLOW_INGEST_TOKEN" in refusal and host in refusal
    assert ingest_refusal(Settings(web_host=host, ingest_token="s3cret")) is None


def test_kafka_tls_and_sasl_settings_reach_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.app.assembly import broker_credentials
    from streams.kafka.clients import client_options

    monkeypatch.setenv("BORDERFLOW_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BORDERFLOW_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("BORDERFLOW_SASL_USERNAME", "ops")
    monkeypatch.setenv("BORDERFLOW_SASL_PASSWORD", "pw")
    configured = Settings()
    options = client_options(configured)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "ops" and options["ssl_context"] is not None
    credentials = broker_credentials(configured)
    assert credentials is not None and credentials.username == "ops" and credentials.ssl_context is not None  # type: ignore[attr-defined]


def test_a_crossing_at_a_registered_checkpoint_between_other_countries_is_left_to_the_worker() -> None:
    """A registration may have changed the checkpoint's countries: the worker that counts it judges, and dead-letters it if wrong."""
    wrong = CROSSING | {"to_country": "KZ"}
    lines = parse_body("ndjson", orjson.dumps(wrong) + b"\n", max_event_bytes=LIMIT)
    assert [line.status for line in lines] == ["accepted"]

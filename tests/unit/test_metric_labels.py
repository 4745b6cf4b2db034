"""Counters start at 0 for every known label value, and the gauges' window labels follow the configured windows."""

from __future__ import annotations

from prometheus_client import generate_latest

from streams.core.config import CoreConfig
from streams.core.effects import Effects
from streams.core.queries import MAX_STATEMENT_GAUGES, gauged_statements
from streams.core.reading import read
from streams.core.state import PartitionState
from streams.core.windows import WindowSpec
from streams.engine import metrics
from tests.factories import T0, crossing_bytes
from tests.support import H


def exposition() -> str:
    return generate_latest(metrics.REGISTRY).decode()


def test_counters_with_known_labels_are_exported_from_zero() -> None:
    text = exposition()
    for event_type in ("crossing", "departure", "statement"):
        for outcome in ("accepted", "duplicate", "late", "invalid"):
            assert f'borderflow_events_total{{outcome="{outcome}",type="{event_type}"}}' in text, (event_type, outcome)
        assert f'borderflow_forwarded_total{{type="{event_type}"}}' in text
    for reason in ("invalid", "late", "future", "out-of-range"):
        assert f'borderflow_dead_letters_total{{reason="{reason}"}}' in text
    for status in ("accepted", "duplicate", "rejected"):
        assert f'borderflow_ingest_lines_total{{status="{status}"}}' in text
    for code in ("202", "400", "401", "403", "408", "409", "413", "415", "422", "503"):
        assert f'borderflow_ingest_requests_total{{code="{code}"}}' in text


def test_window_labels_are_the_configured_windows_names() -> None:
    state = PartitionState("crossings", 0, "crossing", CoreConfig(bucket_seconds=1800))
    values = [crossing_bytes("a", T0 + 600, count=2), crossing_bytes("b", T0 + 2400, count=3), crossing_bytes("c", T0 + 5 * H, count=7)]
    state.process_many([(i, v, -1) for i, v in enumerate(values)], Effects())
    collector = metrics.StateCollector()
    collector.attach(readings=lambda: read([state]), bucket=WindowSpec("30m", 1800, 1800), rolling=WindowSpec("12h", 12 * H, 1800))
    families = {family.name: family for family in collector.collect()}
    crossings = {sample.labels["window"]: sample.value for sample in families["borderflow_crossings"].samples}
    assert crossings == {"30m": 7, "12h": 2 + 3 + 7}  # the half hour holding stream time, and the 12 h ending with it


def test_statement_gauges_are_one_per_label_set_and_bounded() -> None:
    def reconciled(i: int, source: str, value: float) -> dict[str, object]:
        return {"event_id": f"s-{i}", "country": "KZ", "metric": "entries", "source": source, "value": value}

    daily = [reconciled(i, "MVD", 1000.0 * i) for i in range(1, 4)]  # one source, updated daily
    invented = [reconciled(10 + i, f"feed-{i}", 1.0) for i in range(5000)]
    views = gauged_statements([*daily, *invented, reconciled(9, "MVD", 7.0)])
    assert len(views) == MAX_STATEMENT_GAUGES
    assert len({(v.country, v.metric, v.source) for v in views}) == len(views), "no label set twice: Prometheus refuses duplicates"
    assert [v.value for v in views if v.source == "MVD"] == [7.0], "the latest statement of a source is its gauge"
    assert views[-1].source == "MVD" and views[0].source == f"feed-{5000 - MAX_STATEMENT_GAUGES + 1}"

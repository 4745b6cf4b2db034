from collections import Counter
from pathlib import Path

import orjson

from events.times import parse_rfc3339
from streams.tools.simulation import SURGE_END, SURGE_START, simulate


def week_totals(seed: int) -> Counter[str]:
    totals: Counter[str] = Counter()
    for event in simulate(seed):
        if event.flaw:
            continue
        obj = orjson.loads(event.data)
        t = parse_rfc3339(obj["occurred_at"]).timestamp()
        if not SURGE_START <= t < SURGE_END:
            continue
        if obj["type"] == "crossing":
            totals[obj["to_country"]] += obj["count"]
            totals["RU exits"] += obj["count"]
            if obj["border"] == "upper-lars":
                totals["upper-lars"] += obj["count"]
        elif t < SURGE_END - 86400:  # departures by 26 Sept
            totals["KZ departures"] += obj["count"]
    return totals


def test_same_seed_same_events_other_seed_other_events() -> None:
    first = [e.data for e in simulate(7)][:500]
    assert first == [e.data for e in simulate(7)][:500]
    assert first != [e.data for e in simulate(8)][:500]


def test_week_totals_match_the_published_figures() -> None:
    totals = week_totals(2022)
    assert abs(totals["KZ"] - 98_000) / 98_000 < 0.03
    assert totals["GE"] > 53_000 * 0.97 and totals["upper-lars"] == totals["GE"]
    assert totals["RU exits"] > 260_000
    assert abs(totals["KZ departures"] - 40_000) / 40_000 < 0.10


def test_feed_flaws_are_a_small_share() -> None:
    flaws = Counter(e.flaw for e in simulate(2022))
    total = sum(flaws.values())
    assert 0 < flaws["duplicate"] / total < 0.02
    assert 0 < flaws["late"] / total < 0.005
    assert 0 < flaws["malformed"] / total < 0.005


def test_statements_come_in_order_of_publication_with_the_feeds() -> None:
    from cli.simulate import timeline

    events = timeline(2022)
    assert [e.at for e in events] == sorted(e.at for e in events)
    statements = [e for e in events if e.topic_type == "statement"]
    assert len(statements) == 5
    assert events.index(statements[0]) < len(events) - 5  # not all at the end


def test_csv_output_publishes_as_the_same_events(tmp_path: Path) -> None:
    from cli.simulate import timeline, write_file
    from events.files import read_events

    events = timeline(2022)[:2000]
    path = tmp_path / "sim.csv"
    write_file(events, path)
    with path.open("rb") as stream:
        lines = list(read_events(stream, path.name))
    valid = [line.event for line in lines if line.event is not None]
    expected = [e for e in events if e.flaw != "malformed"]
    assert len(valid) == len(expected)
    assert [v.event_id for v in valid] == [orjson.loads(e.data)["event_id"] for e in expected]

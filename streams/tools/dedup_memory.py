"""Resident memory of one partition's dedup index holding N ids: ``python -m streams.tools.dedup_memory N...``.

Each id is a random UUID in text, as upstream systems usually send; ids are
recorded in segments of ``--segment`` ids (one per flush, as the worker does),
and only the index keeps them. Prints the growth of VmRSS and the time to
record, per id. ``--cost`` also times the hot loop's check-and-record of a
new id against a set of the id strings (what the index held before it held
keys), best of 7 alternated rounds.
"""

from __future__ import annotations

import argparse
import gc
import time
import uuid
from pathlib import Path

from streams.core.dedup import DedupIndex


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(n_ids: int, segment: int) -> dict[str, float]:
    gc.collect()
    before = resident_bytes()
    index = DedupIndex()
    started = time.perf_counter()
    for start in range(0, n_ids, segment):
        for offset in range(start, min(start + segment, n_ids)):
            index.record(str(uuid.uuid4()), offset, float(offset))
        index.flush()
    took = time.perf_counter() - started
    gc.collect()
    grown = resident_bytes() - before
    assert len(index) == n_ids
    return {"ids": n_ids, "rss_mb": grown / 1e6, "bytes_per_id": grown / n_ids, "record_us_per_id": took / n_ids * 1e6}


def check_and_record_ns(n_ids: int) -> dict[str, float]:
    """Nanoseconds per new id: :meth:`DedupIndex.first_seen` against a set of strings and two lists."""
    ids = [str(uuid.uuid4()) for _ in range(n_ids)]

    def with_index() -> float:
        first_seen = DedupIndex().first_seen
        started = time.perf_counter()
        for offset, event_id in enumerate(ids):
            first_seen(event_id, offset, 0.0)
        return time.perf_counter() - started

    def with_strings() -> float:
        seen: set[str] = set()
        recorded: list[str] = []
        offsets: list[int] = []
        see, add_id, add_offset = seen.add, recorded.append, offsets.append
        started = time.perf_counter()
        for offset, event_id in enumerate(ids):
            if event_id not in seen:
                see(event_id)
                add_id(event_id)
                add_offset(offset)
        return time.perf_counter() - started

    rounds: dict[str, list[float]] = {"keys": [], "strings": []}
    for _ in range(7):
        rounds["keys"].append(with_index())
        rounds["strings"].append(with_strings())
    return {name: min(times) / n_ids * 1e9 for name, times in rounds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ids", nargs="+", type=int, help="how many ids the index holds (one fresh index each)")
    parser.add_argument("--segment", type=int, default=10_000, help="ids per segment (flush)")
    parser.add_argument("--cost", action="store_true", help="also time checking and recording a new id")
    args = parser.parse_args()
    if args.cost:
        cost = check_and_record_ns(200_000)
        print(f"check and record a new id: {cost['keys']:.0f} ns with keys, {cost['strings']:.0f} ns with a set of strings")
    for n_ids in args.ids:
        figures = measure(n_ids, args.segment)
        print(
            f"{figures['ids']:>11,} ids: RSS +{figures['rss_mb']:,.1f} MB, {figures['bytes_per_id']:.1f} bytes/id, "
            f"record {figures['record_us_per_id']:.2f} us/id (uuid4 included)"
        )


if __name__ == "__main__":
    main()

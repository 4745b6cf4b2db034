"""Operators' and developers' tools built on the rest: the benchmark, replay and verify, the September 2022 simulation."""

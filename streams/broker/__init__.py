"""Brokers borderflow starts itself.

The embedded one (noida-db) and Apache Kafka for the tests and the bench.
What a worker does about the brokers' defects, on whichever broker it runs,
is in :mod:`streams.defects`, which a worker depends on without starting a broker.
"""

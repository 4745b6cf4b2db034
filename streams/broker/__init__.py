"""Brokers borderflow starts itself.

The embedded one (noida-db) with its defects and their workarounds, and
Apache Kafka for the tests and the bench.
"""

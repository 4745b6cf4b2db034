"""Every private part of Faust, mode and aiokafka that borderflow leans on, named in one place.

None of these is public API: a release may rename, remove or change any of
them. borderflow pins the versions it is built and tested on
(:data:`PINNED`, the same as pyproject.toml), and ``tests/unit/test_seam.py``
checks that the installed versions are those and that every name below still
exists where it is expected. An upgrade then fails in that test, naming what
moved, instead of silently no longer calling an override (a renamed
``_commit_offsets`` would commit offsets without the delivery check).

The overrides themselves live where they are used (``fastpath.py``,
``runtime.py``, ``metrics.py``); this module is their inventory.
"""

from __future__ import annotations

from typing import Final

from faust.streams import _current_event as current_event

#: the releases this seam is written against
PINNED: Final = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}

#: (module, class or function, attribute) that borderflow overrides, calls or replaces
PRIVATE: Final[tuple[tuple[str, str, str], ...]] = (
    # the batch consumer (fastpath.BatchingConsumer, Faust's aiokafka Consumer)
    ("faust.transport.drivers.aiokafka", "Consumer", "_new_consumer_thread"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_commit_offsets"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_new_offset"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_drain_messages"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_wait_next_records"),
    ("faust.transport.drivers.aiokafka", "Consumer", "_to_message"),
    ("faust.transport.drivers.aiokafka", "AIOKafkaConsumerThread", "_ensure_consumer"),
    # the idempotent producer, and the producer the direct output writes through
    ("faust.transport.drivers.aiokafka", "Producer", "_settings_extra"),
    ("faust.transport.drivers.aiokafka", "Producer", "_ensure_producer"),
    # the table manager without its start-up second
    ("faust.tables.manager", "TableManager", "_update_channels"),
    # the batch channel's queue
    ("faust.channels", "Channel", "_queue"),
    # the transport that makes the batch consumer and the idempotent producer
    ("faust.app.base", "App", "_new_transport"),
    # aiokafka's records of one fetched partition, replaced for the input topics (fastpath.read_bare)
    ("aiokafka.consumer.fetcher", "PartitionRecords", "_consumer_record"),
    ("aiokafka.consumer.fetcher", "PartitionRecords", "_records_iterator"),
)
#: instance attributes that borderflow reads or writes: (module, class, attribute) found in the class's own source
INSTANCE_ATTRIBUTES: Final[tuple[tuple[str, str, str], ...]] = (
    ("faust.transport.consumer", "Consumer", "_acked"),
    ("faust.transport.consumer", "Consumer", "_read_offset"),
    ("faust.transport.consumer", "Consumer", "_buffered_partitions"),
    ("faust.transport.consumer", "ThreadDelegateConsumer", "_thread"),
    ("mode.services", "Service", "_stopped"),
)

__all__ = ["INSTANCE_ATTRIBUTES", "PINNED", "PRIVATE", "current_event"]

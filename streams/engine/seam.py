"""Every private part of Faust, mode and aiokafka that borderflow leans on, named in one place.

None of these is public API: a release may rename, remove or change any of
them. borderflow pins the versions it is built and tested on
(:data:`PINNED`, the same as pyproject.toml), and ``tests/unit/test_seam.py``
checks that the installed versions are those and that every name below still
exists where it is expected. An upgrade then fails in that test, naming what
moved, instead of silently no longer calling an override (a renamed
``_commit_offsets`` would commit offsets without the delivery check).

The overrides themselves live where they are used (``fastpath.py``,
``runtime.py``); this module is their inventory: for each member, why
borderflow needs it and the test that shows the behaviour it gives. None is
there for the embedded broker alone: its workarounds are in
``streams/broker/defects.py`` and run only on it.
"""

from __future__ import annotations

from typing import Final

from faust.streams import _current_event as current_event

#: the releases this seam is written against
PINNED: Final = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0", "mode-streaming": "0.7.1"}

#: (module, class, attribute, why borderflow needs it, the test that covers the behaviour) for each private member it touches
PRIVATE: Final[tuple[tuple[str, str, str, str, str], ...]] = (
    # the batch consumer (fastpath.BatchingConsumer, Faust's aiokafka Consumer)
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_new_consumer_thread",
        "bound the consumer thread's shutdown wait when Kafka is gone",
        "tests/e2e/test_durability.py (SIGTERM, broker gone)",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_commit_offsets",
        "flush and check every delivery before a commit (the checkpoint)",
        "tests/e2e/test_crash_recovery.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_new_offset",
        "commit the checkpoint's processed mark instead of Faust's acks",
        "tests/e2e/test_crash_recovery.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_drain_messages",
        "hand whole fetched batches to the agent (the hot path)",
        "tests/integration/test_pipeline.py, tests/e2e/test_soak.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_wait_next_records",
        "the fetch the batch loop waits on",
        "tests/e2e/test_durability.py (flow stops during a fetch)",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Consumer",
        "_to_message",
        "one Faust Message per batch, for the table's event context",
        "tests/integration/test_bare_records.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "AIOKafkaConsumerThread",
        "_ensure_consumer",
        "seek aiokafka's consumer in its own thread (rewind, re-read)",
        "tests/unit/test_gap_guard.py, tests/e2e/test_durability.py",
    ),
    # the idempotent producer, and the producer the direct output writes through
    (
        "faust.transport.drivers.aiokafka",
        "Producer",
        "_settings_extra",
        "acks=all and idempotence without transactions",
        "tests/e2e/test_broker_faults.py",
    ),
    (
        "faust.transport.drivers.aiokafka",
        "Producer",
        "_ensure_producer",
        "write record batches on Faust's own producer (streams/engine/output.py)",
        "tests/integration/test_output.py",
    ),
    # the table manager without its start-up second
    (
        "faust.tables.manager",
        "TableManager",
        "_update_channels",
        "start the tables without Faust's one-second wait",
        "tests/e2e/test_durability.py (clean restart)",
    ),
    # the batch channel's queue
    ("faust.channels", "Channel", "_queue", "a queue that keeps its batches when flow resumes", "tests/unit/test_batch_channel.py"),
    # the transport that makes the batch consumer and the idempotent producer
    ("faust.app.base", "App", "_new_transport", "use the batch consumer and the idempotent producer", "every integration test"),
    # aiokafka's records of one fetched partition, replaced for the input topics (fastpath.read_bare)
    (
        "aiokafka.consumer.fetcher",
        "PartitionRecords",
        "_consumer_record",
        "bare records instead of a ConsumerRecord each",
        "tests/integration/test_bare_records.py",
    ),
    (
        "aiokafka.consumer.fetcher",
        "PartitionRecords",
        "_records_iterator",
        "iterate the records without aiokafka's per-record wrapper",
        "tests/integration/test_bare_records.py",
    ),
    # Faust's current event, which picks a table write's changelog partition
    (
        "faust.streams",
        "Stream",
        "_current_event",
        "write a batch's state in the context of one of its own events",
        "tests/integration/test_pipeline.py",
    ),
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

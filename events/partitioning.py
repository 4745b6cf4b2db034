"""Which partition an event belongs to: its home, derived from the event itself.

An event is judged (deduplicated, checked for lateness, counted) only in its
home partition: the partition that Kafka's default partitioner (Java client,
aiokafka) picks for the event's key, ``murmur2(key) mod partitions``. A
producer that keys events that way writes every event home; any other
producer (librdkafka's CRC32, unkeyed round robin, keys by ``event_id``) is
forwarded home by the worker that reads it (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Final

from events.model import Crossing, Event, Registration

_SEED: Final = 0x9747B28C
_M: Final = 0x5BD1E995
_MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``) as an unsigned 32-bit int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest >= 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a keyed record (``toPositive(murmur2(key)) % n``)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def home_key(event: Event) -> bytes:
    """The key an event is routed by: its checkpoint for crossings and registrations, its country otherwise.

    Every copy of an event shares it, so all copies have one home; keying by
    checkpoint also keeps each checkpoint's counts, and its registration, in
    one partition.
    """
    if isinstance(event, (Crossing, Registration)):  # a tuple: a union type is checked slower
        return event.border.encode()
    return event.country.encode()


def home_partition(event: Event, partitions: int) -> int:
    return partition_for_key(home_key(event), partitions)

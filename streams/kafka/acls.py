"""Kafka ACLs in Kafka's own codes, and the ACLs each borderflow principal needs (docs/security.md lists the same).

A worker checks its own list at start (:func:`streams.kafka.permissions.check_permissions`);
the secured tests grant exactly these lists (tests/e2e/test_secured_kafka.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from streams.kafka.topics import Topics


class Resource(IntEnum):
    """Kafka's ``ResourceType`` codes."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Pattern(IntEnum):
    """Kafka's ``PatternType`` codes."""

    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ``AclOperation`` codes."""

    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


ALLOW = 3


@dataclass(frozen=True)
class Acl:
    """``principal`` may do ``operation`` on ``resource`` ``name`` (or every name starting with it, if prefixed)."""

    principal: str
    operation: Operation
    resource: Resource
    name: str
    pattern: Pattern = Pattern.LITERAL

    def __str__(self) -> str:
        prefixed = " (prefixed)" if self.pattern is Pattern.PREFIXED else ""
        return f"User:{self.principal} {self.operation.name} {self.resource.name} {self.name!r}{prefixed}"


def worker_acls(principal: str, topics: Topics, app_id: str, forward: bool = True) -> list[Acl]:
    """What a worker needs (docs/security.md): its input and output topics made by an admin, everything under its app id its own.

    Writing its inputs (forwarding, ``POST /events``) only if it forwards: a verifying replay's worker does not.
    """
    ops = Operation
    inputs = (ops.READ, ops.WRITE, ops.DESCRIBE) if forward else (ops.READ, ops.DESCRIBE)
    return [
        *(Acl(principal, op, Resource.TOPIC, name) for name in topics.inputs for op in inputs),
        *(Acl(principal, op, Resource.TOPIC, name) for name in topics.outputs for op in (ops.WRITE, ops.DESCRIBE)),
        *(Acl(principal, op, Resource.TOPIC, f"{app_id}-", Pattern.PREFIXED) for op in (ops.READ, ops.WRITE, ops.CREATE, ops.DESCRIBE)),
        Acl(principal, ops.READ, Resource.GROUP, app_id),
    ]


def publisher_acls(principal: str, topics: Topics) -> list[Acl]:
    """What ``borderflow publish`` and ``simulate``, or any upstream producer, need: writing the input topics."""
    return [Acl(principal, op, Resource.TOPIC, name) for name in topics.inputs for op in (Operation.WRITE, Operation.DESCRIBE)]


def replay_acls(principal: str, topics: Topics, app_id: str) -> list[Acl]:
    """What ``borderflow replay`` needs: reading the inputs, writing the outputs, and its own app ids under ``<app id>-replay-``."""
    ops = Operation
    own = f"{app_id}-replay-"
    return [
        *(Acl(principal, op, Resource.TOPIC, name) for name in topics.inputs for op in (ops.READ, ops.DESCRIBE)),
        *(Acl(principal, op, Resource.TOPIC, name) for name in topics.outputs for op in (ops.WRITE, ops.DESCRIBE)),
        *(Acl(principal, op, Resource.TOPIC, own, Pattern.PREFIXED) for op in (ops.READ, ops.WRITE, ops.CREATE, ops.DESCRIBE)),
        Acl(principal, ops.READ, Resource.GROUP, own, Pattern.PREFIXED),
    ]

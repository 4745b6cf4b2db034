"""A worker's ACLs, checked before it starts: a missing one is an error naming it, not a worker that waits or crashes later.

Kafka tells a client which operations it may do on each topic (Metadata v8,
``include_topic_authorized_operations``, KIP-430); aiokafka's metadata stops
at v5, so the request is declared here. The worker compares them with the
ACLs it needs (:func:`streams.kafka.acls.worker_acls`, the list
docs/security.md gives): its input and output topics, its internal topics
when they exist (when they do not, whether it may create them), and its
consumer group (which a consumer refused would otherwise wait for silently).
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import GroupAuthorizationFailedError, IncompatibleBrokerVersion
from aiokafka.protocol.admin import DescribeGroupsRequest
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int16, Int32, Schema, String

from streams.kafka.acls import Acl, Operation, Pattern, Resource, worker_acls
from streams.kafka.admin import PermissionMissing, refuse_denied_topics
from streams.kafka.clients import client_options
from streams.kafka.connection import denial
from streams.kafka.topics import internal_topics
from streams.settings import Settings

#: what Kafka answers for authorized operations it was not asked for
NOT_ASKED = -(2**31)


class MetadataResponseV8(Response):
    API_KEY = 3
    API_VERSION = 8
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("brokers", Array(("node_id", Int32), ("host", String("utf-8")), ("port", Int32), ("rack", String("utf-8")))),
        ("cluster_id", String("utf-8")),
        ("controller_id", Int32),
        (
            "topics",
            Array(
                ("error_code", Int16),
                ("name", String("utf-8")),
                ("is_internal", Boolean),
                (
                    "partitions",
                    Array(
                        ("error_code", Int16),
                        ("partition_index", Int32),
                        ("leader_id", Int32),
                        ("leader_epoch", Int32),
                        ("replica_nodes", Array(Int32)),
                        ("isr_nodes", Array(Int32)),
                        ("offline_replicas", Array(Int32)),
                    ),
                ),
                ("topic_authorized_operations", Int32),
            ),
        ),
        ("cluster_authorized_operations", Int32),
    )


class MetadataRequestV8(RequestStruct):
    API_KEY = 3
    API_VERSION = 8
    RESPONSE_TYPE = MetadataResponseV8
    SCHEMA = Schema(
        ("topics", Array(String("utf-8"))),
        ("allow_auto_topic_creation", Boolean),
        ("include_cluster_authorized_operations", Boolean),
        ("include_topic_authorized_operations", Boolean),
    )


class AuthorizedOperationsRequest(Request[MetadataRequestV8]):
    """Metadata of ``topics`` with what this client may do on each."""

    API_KEY = 3

    def __init__(self, topics: list[str]) -> None:
        self._topics = topics

    def build(self, request_struct_class: type[MetadataRequestV8]) -> MetadataRequestV8:
        return request_struct_class(self._topics, False, False, True)


async def authorized_operations(client: AIOKafkaClient, topics: list[str]) -> dict[str, set[Operation] | None] | None:
    """Per topic, the operations this client's principal may do; None for a topic it may not see (or that does not exist).

    None if the broker cannot say (it answers no Metadata v8: the embedded broker).
    """
    try:
        response: Any = await client.send(client.get_random_node(), AuthorizedOperationsRequest(topics))
    except (NotImplementedError, IncompatibleBrokerVersion):
        return None
    out: dict[str, set[Operation] | None] = dict.fromkeys(topics)
    for topic in response.topics:
        error_code, name, bits = topic[0], topic[1], topic[-1]
        if error_code == 0:
            out[name] = set(Operation) if bits == NOT_ASKED else {op for op in Operation if bits & (1 << op)}
    return out


def _needed(acl: Acl) -> str:
    prefixed = " (prefixed)" if acl.pattern is Pattern.PREFIXED else ""
    return f"{acl.operation.name} on {acl.resource.name} {acl.name!r}{prefixed}"


async def _check_group(client: AIOKafkaClient, settings: Settings, group: Acl) -> None:
    """:class:`PermissionMissing` if the group is refused to this client.

    DescribeGroups, not FindCoordinator: Kafka checks the group's ACL first and then
    answers from any broker, whereas FindCoordinator makes a new cluster create its
    offsets topic, and a worker that then joined while the broker was busy with it
    could miss its own just-made changelog in the assignment.
    """
    response: Any = await client.send(client.get_random_node(), DescribeGroupsRequest([settings.app_id]))
    if any(described[0] == GroupAuthorizationFailedError.errno for described in response.groups):
        raise PermissionMissing(
            f"Kafka refused consumer group {settings.app_id!r} to this client: "
            f"{denial(GroupAuthorizationFailedError())}; needed: {_needed(group)}"
        )


async def check_permissions(settings: Settings) -> None:
    """Raise :class:`PermissionMissing` naming the first ACL of :func:`worker_acls` this worker's principal lacks."""
    needed = worker_acls("", settings.topics, settings.app_id, settings.forward)
    internal = internal_topics(settings.app_id)
    client = AIOKafkaClient(**client_options(settings))
    await client.bootstrap()
    try:
        await _check_group(client, settings, next(acl for acl in needed if acl.resource is Resource.GROUP))
        named = [*settings.topics.inputs, *settings.topics.outputs]
        allowed = await authorized_operations(client, named + list(internal))
    finally:
        await client.close()
    if allowed is None:
        return
    for acl in needed:
        if acl.resource is not Resource.TOPIC or (acl.operation is Operation.CREATE and acl.pattern is Pattern.PREFIXED):
            continue  # creating: tried below for the internal topics that do not exist yet
        covered = [acl.name] if acl.pattern is Pattern.LITERAL else [name for name in internal if allowed.get(name) is not None]
        for name in covered:
            if acl.operation not in (allowed.get(name) or set()):
                raise PermissionMissing(
                    f"Kafka does not allow this client {acl.operation.name} on topic {name!r}; needed: {_needed(acl)} "
                    "(docs/security.md lists the ACLs each principal needs)"
                )
    missing = [name for name in internal if allowed.get(name) is None]
    if missing:
        admin = AIOKafkaAdminClient(**client_options(settings))
        await admin.start()
        try:
            response = await admin.create_topics(
                [NewTopic(name, settings.partitions, settings.replication) for name in missing], validate_only=True
            )
        finally:
            await admin.close()
        creating = next(acl for acl in needed if acl.operation is Operation.CREATE and acl.pattern is Pattern.PREFIXED)
        refuse_denied_topics(response, _needed(creating))

"""borderflow on a secured Apache Kafka node: SCRAM over TLS and mutual TLS, each principal with exactly its ACLs.

The node (tests/conftest.py ``secured_kafka``) has no plaintext listener and
enforces ACLs with StandardAuthorizer; the ACLs granted here are those
docs/security.md lists (streams/kafka/acls.py), and nothing more.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.broker.apache_kafka import KafkaCluster
from streams.broker.secured import CertificateAuthority
from streams.kafka.acls import Acl, Operation, Pattern, Resource, publisher_acls, replay_acls, worker_acls
from streams.kafka.topics import Topics
from tests.factories import RANDOM_BORDERS, crossing, keyed, random_crossings, scenario
from tests.support import Model, answers_match, http_get, produce, run_replay, secured_env, secured_options, wait_exact

pytestmark = pytest.mark.e2e

#: every failure must be named within this many seconds (the issue's bound)
NAMED_WITHIN = 30.0


def borderflow(env: dict[str, str], *args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return done, time.monotonic() - started


def grant_deployment(cluster: KafkaCluster, deployment: dict[str, str]) -> Topics:
    """The deployment's topics made by the admin principal; the worker, publisher and replay principals granted their ACLs."""
    topics = Topics(deployment["BORDERFLOW_TOPIC_PREFIX"])
    app_id = deployment["BORDERFLOW_APP_ID"]
    admin = [
        Acl("admin", op, Resource.TOPIC, name)
        for name in (*topics.inputs, *topics.outputs)
        for op in (Operation.CREATE, Operation.DESCRIBE)
    ]
    cluster.grant(
        admin + worker_acls("worker", topics, app_id) + publisher_acls("publisher", topics) + replay_acls("replay", topics, app_id)
    )
    done, _ = borderflow(deployment | secured_env(cluster, "admin", "SCRAM-SHA-512"), "topics")
    assert done.returncode == 0, done.stderr
    return topics


@pytest.mark.parametrize("auth", ["SCRAM-SHA-512", "mtls"], ids=["scram-over-tls", "mutual-tls"])
def test_worker_counts_exactly_and_publish_and_replay_verify_work_with_only_their_acls(
    secured_kafka: KafkaCluster, deployment: dict[str, str], spawn_worker: Any, tmp_path: Path, auth: str
) -> None:
    topics = grant_deployment(secured_kafka, deployment)
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    security = secured_kafka.security
    assert security is not None
    worker_env = secured_env(secured_kafka, "worker", auth)
    secret = security.passwords["worker"]
    if auth == "mtls":  # the worker's key encrypted, its password from a file as Kubernetes mounts secrets
        secret = "key-" + security.passwords["worker"]
        encrypted = security.ca.issue("worker", key_password=secret, stem="worker-encrypted")
        (tmp_path / "key-password").write_text(secret + "\n")
        worker_env |= {
            "BORDERFLOW_SSL_CERTFILE": str(encrypted.certificate),
            "BORDERFLOW_SSL_KEYFILE": str(encrypted.key),
            "BORDERFLOW_SSL_KEY_PASSWORD_FILE": str(tmp_path / "key-password"),
        }
    else:  # the password from a file
        (tmp_path / "sasl-password").write_text(secret + "\n")
        del worker_env["BORDERFLOW_SASL_PASSWORD"]
        worker_env["BORDERFLOW_SASL_PASSWORD_FILE"] = str(tmp_path / "sasl-password")
    live = spawn_worker("live", **worker_env)
    live.wait_ready()

    # an upstream producer (idempotent, as the publisher principal), then borderflow publish
    upstream = "SCRAM-SHA-256" if auth != "mtls" else "mtls"
    messages = random_crossings(prefix, 2_000, seed=26) + scenario(prefix)
    asyncio.run(
        produce(
            secured_env(secured_kafka, "publisher", upstream)["BORDERFLOW_KAFKA"],
            messages,
            **secured_options(secured_kafka, "publisher", upstream),
        )
    )
    published = [crossing(f"published-{i}", 1663718400 + i * 60, RANDOM_BORDERS[i % 5], "RU", "KZ", 3) for i in range(50)]
    (tmp_path / "published.ndjson").write_bytes(b"\n".join(orjson.dumps(event) for event in published) + b"\n")
    publish_auth = "PLAIN" if auth != "mtls" else "mtls"
    done, _ = borderflow(
        deployment | secured_env(secured_kafka, "publisher", publish_auth), "publish", "--quiet", str(tmp_path / "published.ndjson")
    )
    assert done.returncode == 0, done.stderr
    assert "50 published, 0 rejected" in done.stdout

    model = Model(partitions=4)
    model.run(messages + [keyed(topics.for_type("crossing"), event) for event in published])
    wait_exact(live, model, RANDOM_BORDERS)

    replay_env = deployment | secured_env(secured_kafka, "replay", auth) | {"BORDERFLOW_DATA_DIR": str(tmp_path / "replay")}
    replay = run_replay(replay_env, "--verify", "--live", live.url)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert "IDENTICAL" in replay.stderr

    # no secret in the worker's log, its metrics or its overview
    _, metrics = http_get(live.url + "/metrics")
    _, overview = http_get(live.url + "/overview")
    for text in (live.tail(100_000), str(metrics), orjson.dumps(overview).decode(), replay.stderr, replay.stdout):
        assert secret not in text


def refused(env: dict[str, str], expected: str, secret: str | None = None) -> str:
    """``borderflow topics`` under ``env`` fails within the bound, naming ``expected``; its output holds no ``secret``."""
    done, took = borderflow(env, "topics")
    assert done.returncode != 0, done.stdout
    assert expected in done.stderr, done.stderr[-2000:]
    assert took < NAMED_WITHIN, (took, done.stderr[-2000:])
    if secret is not None:
        assert secret not in done.stderr + done.stdout
    return done.stderr


def test_each_wrong_setting_is_named_within_30_s(
    secured_kafka: KafkaCluster, deployment: dict[str, str], kafka: str, tmp_path: Path
) -> None:
    security = secured_kafka.security
    assert security is not None
    scram = deployment | secured_env(secured_kafka, "admin", "SCRAM-SHA-512")
    mtls = deployment | secured_env(secured_kafka, "admin", "mtls")
    wrong = "not-" + security.passwords["admin"]
    refused(scram | {"BORDERFLOW_SASL_PASSWORD": wrong}, "refused SASL SCRAM-SHA-512 authentication as 'admin'", secret=wrong)
    refused(
        deployment | secured_env(secured_kafka, "admin", "PLAIN") | {"BORDERFLOW_SASL_PASSWORD": wrong},
        "refused SASL PLAIN authentication",
        wrong,
    )
    stranger = CertificateAuthority(tmp_path / "another-ca")
    refused(scram | {"BORDERFLOW_SSL_CAFILE": str(stranger.certificate)}, "certificate is not trusted")
    port = secured_kafka.node(1).port
    refused(scram | {"BORDERFLOW_KAFKA": f"localhost:{port}"}, "certificate is not valid for 'localhost'")
    refused(scram | {"BORDERFLOW_KAFKA": kafka}, "speaks plaintext Kafka, not TLS")  # a TLS client on a plaintext port
    plaintext = {
        "BORDERFLOW_SECURITY_PROTOCOL": "PLAINTEXT",
        "BORDERFLOW_SSL_CAFILE": "",
        "BORDERFLOW_SSL_CERTFILE": "",
        "BORDERFLOW_SSL_KEYFILE": "",
    }
    refused(mtls | plaintext, "expects TLS")  # and the reverse
    refused(mtls | {"BORDERFLOW_SSL_CERTFILE": "", "BORDERFLOW_SSL_KEYFILE": ""}, "refused this client's certificate")
    foreign = stranger.issue("admin")
    refused(
        mtls | {"BORDERFLOW_SSL_CERTFILE": str(foreign.certificate), "BORDERFLOW_SSL_KEYFILE": str(foreign.key)},
        "refused this client's certificate",
    )
    refused(mtls | {"BORDERFLOW_KAFKA": secured_kafka.bootstrap}, "expects SASL authentication")


def watch_until_exit(worker: Any, timeout: float) -> tuple[int, float, bool]:
    """The worker's exit status, when, and whether /health ever answered 200 before."""
    started, ready = time.monotonic(), False
    assert worker.process is not None
    while worker.process.poll() is None and time.monotonic() - started < timeout:
        try:
            ready = ready or http_get(worker.url + "/health", timeout=1)[0] == 200
        except OSError:
            pass
        time.sleep(0.2)
    code = worker.process.poll()
    assert code is not None, f"worker still running after {timeout}s:\n{worker.tail()}"
    return code, time.monotonic() - started, ready


def test_a_worker_refused_its_password_exits_naming_it_and_never_reports_ready(
    secured_kafka: KafkaCluster, deployment: dict[str, str], spawn_worker: Any
) -> None:
    security = secured_kafka.security
    assert security is not None
    grant_deployment(secured_kafka, deployment)
    wrong = "not-" + security.passwords["worker"]
    refused_worker = spawn_worker(
        "wrong-password", **secured_env(secured_kafka, "worker", "SCRAM-SHA-512") | {"BORDERFLOW_SASL_PASSWORD": wrong}
    )
    code, took, ready = watch_until_exit(refused_worker, 60)
    log = refused_worker.tail(100_000)
    assert code != 0 and not ready and took < NAMED_WITHIN, (code, took, ready, log[-2000:])
    assert "refused SASL SCRAM-SHA-512 authentication as 'worker'" in log and wrong not in log


@pytest.mark.parametrize(
    ("operation", "resource", "name"),
    [
        (Operation.READ, Resource.GROUP, "{app}"),
        (Operation.READ, Resource.TOPIC, "{prefix}crossings"),
        (Operation.WRITE, Resource.TOPIC, "{prefix}borderflow-dlq"),
        (Operation.CREATE, Resource.TOPIC, "{app}-"),
    ],
    ids=["group-read", "input-read", "output-write", "internal-create"],
)
def test_a_worker_missing_one_acl_exits_naming_it_and_never_reports_ready(
    secured_kafka: KafkaCluster, deployment: dict[str, str], spawn_worker: Any, operation: Operation, resource: Resource, name: str
) -> None:
    """Every ACL of docs/security.md but one, granted to a principal of its own (a certificate's CN)."""
    security = secured_kafka.security
    assert security is not None
    topics = grant_deployment(secured_kafka, deployment)
    app_id = deployment["BORDERFLOW_APP_ID"]
    lacking = name.format(app=app_id, prefix=deployment["BORDERFLOW_TOPIC_PREFIX"])
    principal = f"lacks-{operation.name.lower()}-{uuid.uuid4().hex[:6]}"
    security.add_client(principal)
    acls = worker_acls(principal, topics, app_id)
    kept = [acl for acl in acls if (acl.operation, acl.resource, acl.name) != (operation, resource, lacking)]
    assert len(kept) == len(acls) - 1
    secured_kafka.grant(kept)
    worker = spawn_worker(principal, **secured_env(secured_kafka, principal, "mtls"))
    code, took, ready = watch_until_exit(worker, 60)
    log = worker.tail(100_000)
    assert code != 0 and not ready and took < NAMED_WITHIN, (code, took, ready, log[-2000:])
    assert f"needed: {operation.name} on {resource.name} {lacking!r}" in log, log[-2000:]


@pytest.mark.soak
def test_a_worker_sigkilled_mid_stream_on_three_sasl_ssl_nodes_loses_and_doubles_nothing(
    secured_kafka_cluster: KafkaCluster, deployment: dict[str, str], spawn_worker: Any, tmp_path: Path
) -> None:
    """Three secured nodes (replication 3, two in sync); two workers, one SIGKILLed three times while the feed runs."""
    cluster = secured_kafka_cluster
    deployment["BORDERFLOW_REPLICATION"] = "3"
    grant_deployment(cluster, deployment)
    prefix = deployment["BORDERFLOW_TOPIC_PREFIX"]
    messages = random_crossings(prefix, 12_000, seed=126) + scenario(prefix)
    model = Model(partitions=4)
    model.run(messages)
    env = secured_env(cluster, "worker", "SCRAM-SHA-512")
    peer = spawn_worker("w2", **env)
    worker = spawn_worker("w1", **env)
    for started in (peer, worker):
        started.wait_ready(timeout=120)
    options = secured_options(cluster, "publisher", "SCRAM-SHA-256")
    slices = [messages[i * len(messages) // 4 : (i + 1) * len(messages) // 4] for i in range(4)]
    for index, part in enumerate(slices):
        asyncio.run(produce(cluster.bootstrap, part, **options))
        if index < 3:
            time.sleep(0.5 + index * 0.3)  # part of the slice processed
            worker.kill()
            worker = spawn_worker("w1", port=worker.port, **env)
            worker.wait_ready(timeout=120)
    for asked in (worker, peer):
        wait_exact(asked, model, RANDOM_BORDERS, timeout=180)
    assert answers_match(worker, model, RANDOM_BORDERS) and answers_match(peer, model, RANDOM_BORDERS)

    replay_env = deployment | secured_env(cluster, "replay", "SCRAM-SHA-512") | {"BORDERFLOW_DATA_DIR": str(tmp_path / "replay")}
    replay = run_replay(replay_env, "--verify", "--live", worker.url)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert "IDENTICAL" in replay.stderr


def test_bench_measures_every_contestant_on_a_secured_cluster(secured_kafka: KafkaCluster, deployment: dict[str, str]) -> None:
    """Its producer, bare consumer, Faust baseline and worker all connect with the settings (here mutual TLS)."""
    own = [
        *(
            Acl("bench", op, Resource.TOPIC, "bench-", Pattern.PREFIXED)
            for op in (Operation.CREATE, Operation.READ, Operation.WRITE, Operation.DESCRIBE)
        ),
        Acl("bench", Operation.READ, Resource.GROUP, "bench-", Pattern.PREFIXED),
    ]
    secured_kafka.grant(own)
    env = {k: v for k, v in deployment.items() if not k.startswith("BORDERFLOW_")}  # the bench makes its own topics and app ids
    args = ("bench", "--events", "2000", "--baseline-events", "300", "--timeout", "120", "--json")
    done, _ = borderflow(env | secured_env(secured_kafka, "bench", "mtls"), *args, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = orjson.loads(done.stdout)
    bare, baseline, worker, _core = figures["results"]
    assert bare["events"] == worker["events"] == 2000 and baseline["events"] == 300
    assert figures["broker"] == f"the cluster at {secured_kafka.tls_bootstrap}"

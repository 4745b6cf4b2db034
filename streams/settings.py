"""All configuration in one typed object, read from ``BORDERFLOW_*`` variables."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.times import format_duration, parse_duration, parse_rfc3339
from streams.core.config import CoreConfig
from streams.core.windows import WindowSpec, validate_specs
from streams.kafka.topics import Topics

#: each secret setting, and the setting naming a file to read it from instead (as Kubernetes and Docker mount secrets)
SECRET_FILES: Final = {"sasl_password": "sasl_password_file", "ssl_key_password": "ssl_key_password_file"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BORDERFLOW_", extra="ignore")

    kafka: str = Field("127.0.0.1:9092", description="bootstrap servers, host:port[,host:port]")
    topic_prefix: str = Field("", description="prefix of every topic name (to share a cluster)")
    app_id: str = Field("borderflow", description="Faust app id: consumer group and changelog prefix")
    data_dir: Path = Field(Path(".borderflow"), description="local state directory")
    web_host: str = Field("127.0.0.1", description="worker HTTP bind address")
    web_port: int = Field(6066, description="worker HTTP port")
    advertised_url: str | None = Field(
        None, description="URL other workers use to reach this one (default: http://web_host:web_port, or the hostname for 0.0.0.0)"
    )
    ingest_token: str | None = Field(None, description="bearer token for POST /events", repr=False)
    cluster_token: str | None = Field(
        None, description="bearer token of the routes workers use among themselves (default: the ingest token)", repr=False
    )
    max_unregistered_checkpoints: int = Field(
        1000,
        ge=0,
        description="unregistered checkpoints a deployment counts (each partition an equal share); a crossing at one more is dead-lettered",
    )
    client_rate: float = Field(50.0, gt=0, description="requests a second one anonymous client may make (429 beyond)")
    client_burst: int = Field(200, ge=1, description="requests one anonymous client may make at once after a quiet spell")
    client_concurrency: int = Field(16, ge=1, description="requests one anonymous client may have in progress")
    clients_concurrency: int = Field(64, ge=1, description="requests all anonymous clients together may have in progress")
    clients_rate: float = Field(50.0, gt=0, description="requests a second all anonymous clients together may make (429 beyond)")
    clients_burst: int = Field(200, ge=1, description="requests all anonymous clients together may make at once after a quiet spell")
    grace: timedelta = Field(timedelta(hours=6), description="grace period before events are late")
    max_future: timedelta = Field(
        timedelta(hours=6), description="how far an event's time may be ahead of when it was sent (its record's timestamp)"
    )
    since: datetime | None = Field(None, description="start of the cumulative window (RFC 3339)")
    earliest: datetime = Field(
        datetime(1970, 1, 1, tzinfo=UTC), description="earliest event time accepted (RFC 3339); earlier events are out of range"
    )
    bucket: timedelta = Field(timedelta(hours=1), description="tumbling window size (base bucket)")
    rolling: timedelta = Field(timedelta(hours=24), description="rolling window size")
    rolling_step: timedelta = Field(timedelta(hours=1), description="rolling window step")
    retention: timedelta = Field(timedelta(days=30), description="event time a window stays in hot state")
    dedup_horizon: timedelta = Field(timedelta(days=7), description="event time an event_id is remembered")
    partitions: int = Field(4, ge=1, description="partitions of every input and changelog topic")
    replication: int = Field(1, ge=1, description="replication factor of created topics")
    store: Literal["memory", "rocksdb"] = Field("rocksdb", description="table store (rocksdb via rocksdict, or memory)")
    standby_replicas: int = Field(0, ge=0, description="standby table replicas")
    batch_size: int = Field(5000, ge=1, description="events per processing batch")
    batch_within: float = Field(0.2, gt=0, description="seconds to wait to fill a batch")
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=30_000,
        description="how long the broker may hold the worker's fetch while the partitions in it have no new records",
    )
    fast_path: bool = Field(True, description="input in whole batches past Faust's per-event streams (streams/engine/fastpath.py)")
    forward: bool = Field(
        True, description="send events that arrive outside their home partition to it (off in a verifying replay: the live workers do)"
    )
    max_event_bytes: int = Field(64 * 1024, ge=256, description="largest accepted event")
    compression: Literal["none", "gzip", "lz4", "zstd", "snappy"] = Field(
        "zstd", description="compression of everything borderflow produces (events, changelogs, outputs)"
    )
    body_limit: int = Field(5 * 1024 * 1024, ge=1024, description="largest POST /events body")
    ingest_max_lines: int = Field(10_000, ge=1, le=1_000_000, description="most events (NDJSON lines) in one POST /events body")
    log_level: str = Field("WARNING", description="worker log level")
    startup_timeout: timedelta = Field(
        timedelta(seconds=30), description="how long a worker waits at start for Kafka to answer before it exits with an error"
    )
    rebalance_timeout: timedelta = Field(
        timedelta(seconds=12),
        description="how long a rebalance waits for members to rejoin: see docs/reliability.md",
    )
    session_timeout: timedelta = Field(
        timedelta(seconds=10),
        description="consumer session timeout: how soon a dead worker's partitions move",
    )
    worker_id: str | None = Field(
        None, description="stable group.instance.id (default: hostname-webport; hostname-address-webport for a non-loopback address)"
    )
    broker: Literal["auto", "kafka", "embedded"] = Field(
        "auto", description="which broker this is, for the embedded broker's workarounds: auto detects it (streams/defects.py)"
    )
    evict_dead_members: bool | None = Field(
        None, description="remove group members unreachable for a session timeout (default: only on the embedded broker)"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every Kafka client connects: docs/secured-kafka.md"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism (with a SASL_* security protocol)"
    )
    sasl_username: str | None = Field(None, description="SASL user name")
    sasl_password: SecretStr | None = Field(None, description="SASL password", repr=False)
    sasl_password_file: Path | None = Field(None, description="file holding the SASL password (instead of BORDERFLOW_SASL_PASSWORD)")
    ssl_cafile: Path | None = Field(None, description="PEM file of the CAs that sign the brokers' certificates (default: the system's)")
    ssl_certfile: Path | None = Field(None, description="PEM file of this client's certificate chain, for mutual TLS")
    ssl_keyfile: Path | None = Field(None, description="PEM file of the client certificate's key (default: in BORDERFLOW_SSL_CERTFILE)")
    ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted private key", repr=False)
    ssl_key_password_file: Path | None = Field(
        None, description="file holding the private key's password (instead of BORDERFLOW_SSL_KEY_PASSWORD)"
    )

    @field_validator(
        "grace",
        "max_future",
        "bucket",
        "rolling",
        "rolling_step",
        "retention",
        "dedup_horizon",
        "rebalance_timeout",
        "session_timeout",
        "startup_timeout",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value)
        return value

    @field_validator(
        "sasl_username", "sasl_password", "sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
        "ssl_key_password", "ssl_key_password_file", mode="before",
    )  # fmt: skip
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        """An empty variable (``${VAR:-}`` in docker-compose) is an unset one, not the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("sasl_mechanism", mode="before")
    @classmethod
    def _mechanism(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _kafka_security(self) -> Self:
        """Secrets read from their files; the settings of a security protocol all there, and none of another's."""
        for secret, file_setting in SECRET_FILES.items():
            path = getattr(self, file_setting)
            if path is None:
                continue
            if getattr(self, secret) is not None:
                raise ValueError(f"set BORDERFLOW_{secret.upper()} or BORDERFLOW_{file_setting.upper()}, not both")
            try:
                text = path.read_text().rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or exc
                raise ValueError(f"cannot read BORDERFLOW_{file_setting.upper()} ({path}): {reason}") from None
            if not text:
                raise ValueError(f"BORDERFLOW_{file_setting.upper()} ({path}) is empty")
            setattr(self, secret, SecretStr(text))
        if self.security_protocol.startswith("SASL") and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"BORDERFLOW_SECURITY_PROTOCOL={self.security_protocol} needs BORDERFLOW_SASL_USERNAME "
                "and BORDERFLOW_SASL_PASSWORD (or BORDERFLOW_SASL_PASSWORD_FILE)"
            )
        tls = {"ssl_cafile": self.ssl_cafile, "ssl_certfile": self.ssl_certfile, "ssl_keyfile": self.ssl_keyfile}
        if not self.security_protocol.endswith("SSL") and any(value is not None for value in tls.values()):
            given = ", ".join(f"BORDERFLOW_{name.upper()}" for name, value in tls.items() if value is not None)
            raise ValueError(f"{given} given, but BORDERFLOW_SECURITY_PROTOCOL={self.security_protocol} does not use TLS")
        if self.ssl_certfile is None and (self.ssl_keyfile is not None or self.ssl_key_password is not None):
            raise ValueError("a client key (BORDERFLOW_SSL_KEYFILE, BORDERFLOW_SSL_KEY_PASSWORD) needs BORDERFLOW_SSL_CERTFILE")
        return self

    @field_validator("since", "earliest", mode="before")
    @classmethod
    def _instant(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            return parse_rfc3339(value)
        return value

    @property
    def canonical_url(self) -> str:
        """How peers reach this worker: a wildcard bind address is no address to call."""
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        host = self.web_host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - recognising a wildcard, not binding one
            host = socket.gethostname()
        return f"http://{host}:{self.web_port}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def bootstrap_servers(self) -> list[str]:
        return [part.strip() for part in self.kafka.split(",") if part.strip()]

    @property
    def compression_type(self) -> str | None:
        """The producers' ``compression_type``."""
        return None if self.compression == "none" else self.compression

    def core(self) -> CoreConfig:
        bucket_seconds = int(self.bucket.total_seconds())
        bucket = WindowSpec(_name(self.bucket), bucket_seconds, bucket_seconds)
        rolling = WindowSpec(_name(self.rolling), int(self.rolling.total_seconds()), int(self.rolling_step.total_seconds()))
        validate_specs((bucket, rolling), bucket_seconds)
        longest = max(bucket.size, rolling.size)
        if self.retention < self.grace + timedelta(seconds=longest):
            raise ValueError(
                f"BORDERFLOW_RETENTION ({format_duration(self.retention)}) must be at least BORDERFLOW_GRACE plus the longest window "
                f"({format_duration(self.grace + timedelta(seconds=longest))}): a window must be final before it leaves the hot state"
            )
        return CoreConfig(
            bucket_seconds=bucket_seconds,
            bucket=bucket,
            rolling=rolling,
            grace=int(self.grace.total_seconds()),
            since=None if self.since is None else self.since.timestamp(),
            retention=int(self.retention.total_seconds()),
            dedup_horizon=int(self.dedup_horizon.total_seconds()),
            max_event_bytes=self.max_event_bytes,
            max_future=int(self.max_future.total_seconds()),
            earliest=self.earliest.timestamp(),
            partitions=self.partitions,
            unregistered_checkpoints=-(-self.max_unregistered_checkpoints // self.partitions),
        )


def _name(delta: timedelta) -> str:
    return format_duration(delta)

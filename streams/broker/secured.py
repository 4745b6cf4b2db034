"""What a secured Apache Kafka cluster of the test helper is made of: a CA of its own, certificates, users and ACLs.

Each cluster gets a fresh certificate authority (``openssl``), one
certificate for its brokers (the brokers' principal, the only super user)
and one per client principal, and a password per user, which is accepted by
SCRAM-SHA-512, SCRAM-SHA-256 (users created when the storage is formatted)
and PLAIN (users in the listener's JAAS config). Certificates name the
principal in their CN; the brokers map a certificate's subject to that name,
so ``User:worker`` is the same principal over SASL and over mutual TLS.

ACLs (streams/kafka/acls.py) are created with Kafka's CreateAcls request
through aiokafka, as the brokers' principal.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.kafka.acls import ALLOW, Acl

#: the principal the brokers authenticate as to each other (and the only super user)
BROKER_PRINCIPAL = "broker"
#: the SASL mechanisms of the secured listener, each one accepting every user
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
CERTIFICATE_DAYS = 7


@dataclass(frozen=True)
class Identity:
    """A principal's certificate (PEM, signed by the cluster's CA) and its private key (PKCS#8 PEM)."""

    name: str
    certificate: Path
    key: Path
    #: the key's password, if the key file is encrypted
    key_password: str | None = None


def openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise FileNotFoundError("a secured Kafka cluster needs openssl for its certificates: run 'make system-deps'")
    return found


def _run(*args: str) -> None:
    done = subprocess.run([openssl(), *args], capture_output=True, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")


@dataclass
class CertificateAuthority:
    """A CA made in ``directory``, and the certificates it issues there."""

    directory: Path
    name: str = "borderflow test CA"

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.certificate = self.directory / "ca.pem"
        self._key = self.directory / "ca.key"
        _run(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(self._key), "-out", str(self.certificate), "-days", str(CERTIFICATE_DAYS), "-subj", f"/CN={self.name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, hosts: Iterable[str] = (), key_password: str | None = None, stem: str | None = None) -> Identity:
        """A certificate for ``CN=name``, valid for ``hosts`` (addresses or DNS names) if any, for servers and clients.

        Its files are ``<stem>.pem`` and ``<stem>.key`` (``stem`` is ``name`` unless given).
        """
        certificate, key = self.directory / f"{stem or name}.pem", self.directory / f"{stem or name}.key"
        extensions = ["-addext", "basicConstraints=CA:FALSE", "-addext", "extendedKeyUsage=serverAuth,clientAuth"]
        names = [f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}" for h in dict.fromkeys(hosts)]
        if names:
            extensions += ["-addext", "subjectAltName=" + ",".join(names)]
        _run(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
            "-out", str(certificate), "-days", str(CERTIFICATE_DAYS), "-subj", f"/CN={name}",
            "-CA", str(self.certificate), "-CAkey", str(self._key), *extensions,
        )  # fmt: skip
        if key_password is not None:
            plain = key.with_suffix(".plain.key")
            key.rename(plain)
            _run("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(plain), "-out", str(key), "-passout", f"pass:{key_password}")
            plain.unlink()
        return Identity(name, certificate, key, key_password)


async def create_acls(client_options: dict[str, Any], acls: Iterable[Acl]) -> None:
    """Create ``acls`` through a client authenticated as a principal that may (the brokers' own)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.admin import CreateAclsRequest

    client = AIOKafkaClient(**client_options)
    await client.bootstrap()
    try:
        for acl in acls:
            request = CreateAclsRequest(acl.resource, acl.name, acl.pattern, f"User:{acl.principal}", "*", acl.operation, ALLOW)
            response = await client.send(client.get_random_node(), request)
            for error_code, message in response.creation_responses:
                if error_code:
                    raise RuntimeError(f"creating the ACL {acl} failed: error {error_code} {message}")
    finally:
        await client.close()


@dataclass
class Security:
    """The CA, the brokers' and clients' certificates and the users of one secured cluster, made in ``directory``."""

    directory: Path
    hosts: list[str]
    #: client principals: each gets a password (for every SASL mechanism) and a certificate
    principals: tuple[str, ...] = ("admin", "worker", "publisher", "replay", "bench", "nobody")
    passwords: dict[str, str] = field(init=False, default_factory=dict)
    clients: dict[str, Identity] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority(self.directory / "pki")
        self.broker = self.ca.issue(BROKER_PRINCIPAL, self.hosts)
        self.broker_keystore = self.directory / "pki" / "broker-keystore.pem"
        self.broker_keystore.write_text(self.broker.key.read_text() + self.broker.certificate.read_text())
        for name in self.principals:
            self.passwords[name] = secrets.token_urlsafe(18)
            self.clients[name] = self.ca.issue(name)

    def add_client(self, name: str) -> Identity:
        """A certificate for one more principal, ``User:name`` over mutual TLS (the brokers need not know it beforehand)."""
        self.clients[name] = self.ca.issue(name)
        return self.clients[name]

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments creating every user for both SCRAM mechanisms."""
        out = []
        for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            for name, password in self.passwords.items():
                out += ["--add-scram", f"{mechanism}=[name={name},password={password}]"]
        return out

    def listener_properties(self, client_sasl: str, client_tls: str, internal: str) -> dict[str, str]:
        """Broker settings of the secured listeners: SASL_SSL and mutual-TLS clients, mutual TLS among brokers and controllers."""
        plain_users = " ".join(f'user_{name}="{password}"' for name, password in self.passwords.items())
        sasl, tls, inner = client_sasl.lower(), client_tls.lower(), internal.lower()
        return {
            "listener.security.protocol.map": f"CONTROLLER:SSL,{internal}:SSL,{client_sasl}:SASL_SSL,{client_tls}:SSL",
            "inter.broker.listener.name": internal,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca.certificate),
            "ssl.client.auth": "none",
            f"listener.name.{tls}.ssl.client.auth": "required",
            f"listener.name.{inner}.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            # a certificate's principal is its CN: User:worker by certificate is User:worker by SCRAM
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            f"listener.name.{sasl}.sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            "sasl.enabled.mechanisms": ",".join(SASL_MECHANISMS),
            f"listener.name.{sasl}.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"listener.name.{sasl}.scram-sha-256.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            f"listener.name.{sasl}.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def broker_client_options(self, bootstrap: str) -> dict[str, Any]:
        """aiokafka settings of a client authenticated as the brokers' principal (on their internal listener)."""
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca.certificate))
        context.load_cert_chain(str(self.broker.certificate), str(self.broker.key))
        return {"bootstrap_servers": bootstrap, "security_protocol": "SSL", "ssl_context": context}


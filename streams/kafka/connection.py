"""Why a Kafka client cannot connect, when the cause is its settings and waiting will not help.

aiokafka logs the cause of a failed connection and raises a bare "Unable to
bootstrap"; a client with a wrong password, an untrusted certificate or the
wrong security protocol would retry until its deadline. :func:`refusal`
connects once more with the same settings and names the cause: the broker
refused the credentials or the certificate, the broker's certificate is not
trusted or does not name the host, or the listener speaks another protocol
(TLS against plaintext, SASL or not). Nothing it says holds a secret.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import IllegalSaslStateError, KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.protocol.admin import SaslHandShakeRequest
from aiokafka.protocol.metadata import MetadataRequest

from streams.kafka.clients import client_options
from streams.settings import Settings

#: seconds one check of one address may take
CHECK_TIMEOUT = 5.0
#: an ApiVersions request (v0), which any Kafka broker answers before authentication
API_VERSIONS_V0 = b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x0aborderflow"


async def refusal(settings: Settings, timeout: float = CHECK_TIMEOUT) -> str | None:
    """The cause, naming the setting to look at, if the client settings cannot work with the first address that answers."""
    for server in settings.bootstrap_servers:
        try:
            cause = await asyncio.wait_for(_refusal(settings, server), timeout)
        except (TimeoutError, OSError):
            continue  # not answering is not a refusal: the caller's deadline decides
        if cause is not None:
            return f"{server}: {cause}"
    return None


async def _refusal(settings: Settings, server: str) -> str | None:  # noqa: PLR0911 - a cause for each way a connection fails
    host, _, port_text = server.rpartition(":")
    host, port = host.strip("[]"), int(port_text)
    options: dict[str, Any] = {k: v for k, v in client_options(settings).items() if k != "bootstrap_servers"}
    tls = settings.security_protocol.endswith("SSL")
    protocol = f"BORDERFLOW_SECURITY_PROTOCOL={settings.security_protocol}"
    try:
        conn = await create_conn(host, port, request_timeout_ms=int(CHECK_TIMEOUT * 1000), **options)
    except ssl.SSLCertVerificationError as exc:
        if "mismatch" in str(exc.verify_message).lower():
            return (
                f"the broker's certificate is not valid for {host!r} ({exc.verify_message}): "
                "connect by a name or address the certificate holds (BORDERFLOW_KAFKA)"
            )
        return f"the broker's certificate is not trusted ({exc.verify_message}): is BORDERFLOW_SSL_CAFILE the CA that signed it?"
    except SaslAuthenticationFailed as exc:
        return (
            f"the broker refused SASL {settings.sasl_mechanism} authentication as {settings.sasl_username!r}: {_said(exc)} "
            "(check BORDERFLOW_SASL_USERNAME, BORDERFLOW_SASL_PASSWORD and BORDERFLOW_SASL_MECHANISM)"
        )
    except UnsupportedSaslMechanismError as exc:
        return f"the listener does not take BORDERFLOW_SASL_MECHANISM={settings.sasl_mechanism}: {_said(exc)}"
    except IllegalSaslStateError:
        return f"the listener does not take SASL authentication: {protocol} is not the listener's"
    except (KafkaError, OSError, TimeoutError) as exc:
        if isinstance(exc, ConnectionRefusedError):
            return None
        if tls and await _answers_plaintext(host, port):
            return f"the listener speaks plaintext Kafka, not TLS: {protocol} is not the listener's (or this is not its TLS port)"
        if not tls and await _speaks_tls(host, port):
            return f"the listener expects TLS: {protocol} does not use it (SSL or SASL_SSL)"
        # the broker's TLS alert arrives after the handshake, as the cause of a closed connection
        alert = exc if isinstance(exc, ssl.SSLError) else exc.__cause__
        if isinstance(alert, ssl.SSLError):
            if "certificate" in str(alert).lower():
                return (
                    f"the broker refused this client's certificate ({alert.reason}): check BORDERFLOW_SSL_CERTFILE and "
                    "BORDERFLOW_SSL_KEYFILE (a certificate is needed there, signed by a CA the brokers trust)"
                )
            return f"TLS with the broker failed: {alert.reason or alert}"
        return None
    try:
        if settings.security_protocol.startswith("SASL"):
            return None
        try:
            await conn.send(MetadataRequest([]))
            return None
        except (KafkaError, OSError, TimeoutError):
            pass
    finally:
        conn.close()
    mechanisms = await _sasl_mechanisms(host, port, options)
    if mechanisms:
        return f"the listener expects SASL authentication ({', '.join(mechanisms)}): {protocol} does not use it (SASL_SSL)"
    return None


def denial(exc: BaseException) -> str:
    """An error from Kafka as a message: for a refused permission, what is missing and where the list of ACLs is."""
    if isinstance(exc, KafkaError) and type(exc).__name__.endswith(("AuthorizationFailedError", "AuthorizationFailed")):
        described = getattr(exc, "description", "") or ""
        detail = f" ({_said(exc)})" if exc.args else ""
        return (
            f"{getattr(exc, 'message', type(exc).__name__)}: {described}{detail}; "
            "the principal lacks an ACL (docs/security.md lists the ACLs each principal needs)"
        )
    return repr(exc)


def _said(exc: KafkaError) -> str:
    """What the broker said, without aiokafka's class name around it."""
    return str(exc.args[0]) if exc.args else type(exc).__name__


async def _answers_plaintext(host: str, port: int) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CHECK_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(len(API_VERSIONS_V0).to_bytes(4, "big") + API_VERSIONS_V0)
        await writer.drain()
        answer = await asyncio.wait_for(reader.readexactly(8), CHECK_TIMEOUT)
        # a Kafka answer: a plausible size, then the request's correlation id (a TLS alert is neither)
        return int.from_bytes(answer[:4], "big") < 1 << 20 and int.from_bytes(answer[4:], "big") == 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


async def _speaks_tls(host: str, port: int) -> bool:
    """Whether a TLS handshake succeeds there, whoever's the certificate: only to tell a TLS listener from another."""
    anything = ssl.create_default_context()
    anything.check_hostname = False
    anything.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=anything), CHECK_TIMEOUT)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _sasl_mechanisms(host: str, port: int, options: dict[str, Any]) -> list[str]:
    """The SASL mechanisms a listener offers, if it is a SASL listener."""
    try:
        conn = await create_conn(host, port, request_timeout_ms=int(CHECK_TIMEOUT * 1000), **options)
    except (KafkaError, OSError, TimeoutError):
        return []
    try:
        answer = await conn.send(SaslHandShakeRequest("PLAIN"))
        return list(answer.enabled_mechanisms)
    except (KafkaError, OSError, TimeoutError):
        return []
    finally:
        conn.close()

"""Kafka client settings shared by every client: admin, producers, consumers, bench, and Faust's (streams/app/assembly.py)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from streams.settings import Settings


class TlsSettingsInvalid(ValueError):
    pass


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's connection settings: bootstrap servers, TLS and SASL."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if settings.security_protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value() if settings.sasl_password is not None else None,
        }
    return options


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Brokers verified against BORDERFLOW_SSL_CAFILE (else the system's CAs) and their host names; a client certificate if given."""
    try:
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSettingsInvalid(
            f"cannot load the CA certificates of BORDERFLOW_SSL_CAFILE ({settings.ssl_cafile}): {_reason(exc)}"
        ) from None
    if settings.ssl_certfile is not None:
        password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password is not None else None
        try:
            context.load_cert_chain(
                str(settings.ssl_certfile), str(settings.ssl_keyfile) if settings.ssl_keyfile else None, password=password or _no_password
            )
        except (OSError, ssl.SSLError) as exc:
            key = f" with its key BORDERFLOW_SSL_KEYFILE ({settings.ssl_keyfile})" if settings.ssl_keyfile else ""
            hint = " (an encrypted key: is BORDERFLOW_SSL_KEY_PASSWORD set, and right?)"
            raise TlsSettingsInvalid(
                f"cannot load the client certificate BORDERFLOW_SSL_CERTFILE ({settings.ssl_certfile}){key}: {_reason(exc)}"
                + (hint if _encrypted(settings.ssl_keyfile or settings.ssl_certfile) else "")
            ) from None
    return context


def _encrypted(pem: Path) -> bool:
    try:
        return "ENCRYPTED" in pem.read_text(errors="replace")
    except OSError:
        return False


def _no_password() -> str:
    """For an encrypted key given no password: fail to load it (OpenSSL would otherwise ask on the terminal)."""
    return ""


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)

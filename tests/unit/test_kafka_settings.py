"""Kafka connection settings: secrets from files, what each security protocol needs, and no secret in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.kafka.clients import TlsSettingsInvalid, client_options
from streams.settings import Settings
from streams.tools.replay import settings_env


def test_a_password_file_is_read_once_without_its_newline_and_passed_on_as_the_file(tmp_path: Path) -> None:
    (tmp_path / "password").write_text("s3cret-from-a-file\n")
    settings = Settings(security_protocol="SASL_SSL", sasl_username="ops", sasl_password_file=tmp_path / "password")
    assert client_options(settings)["sasl_plain_password"] == "s3cret-from-a-file"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    env = settings_env(settings)  # what a replay's worker is started with
    assert env["BORDERFLOW_SASL_PASSWORD_FILE"] == str(tmp_path / "password") and "BORDERFLOW_SASL_PASSWORD" not in env


def test_a_password_given_directly_reaches_a_replay_worker() -> None:
    env = settings_env(Settings(security_protocol="SASL_SSL", sasl_username="ops", sasl_password="pw"))
    assert env["BORDERFLOW_SASL_PASSWORD"] == "pw"


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_username": "ops"}, "needs BORDERFLOW_SASL_USERNAME and BORDERFLOW_SASL_PASSWORD"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "ops", "sasl_password": "a", "sasl_password_file": "x"}, "not both"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "ops", "sasl_password_file": "/nonexistent/pw"}, "cannot read"),
        ({"ssl_cafile": "/etc/ssl/ca.pem"}, "PLAINTEXT does not use TLS"),
        ({"security_protocol": "SSL", "ssl_keyfile": "k.pem"}, "needs BORDERFLOW_SSL_CERTFILE"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"}, "sasl_mechanism"),
    ],
)
def test_incomplete_or_contradictory_kafka_security_is_refused_naming_the_setting(given: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(**given)
    assert named in str(refused.value)


def test_empty_variables_are_unset_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE", "SASL_PASSWORD_FILE", "SSL_KEY_PASSWORD"):
        monkeypatch.setenv(f"BORDERFLOW_{name}", "")
    settings = Settings()
    assert settings.ssl_cafile is None and settings.ssl_certfile is None and settings.ssl_key_password is None
    assert client_options(settings)["security_protocol"] == "PLAINTEXT"


def test_scram_mechanisms_are_taken_in_any_case() -> None:
    settings = Settings(security_protocol="SASL_SSL", sasl_mechanism="scram-sha-256", sasl_username="u", sasl_password="p")
    assert client_options(settings)["sasl_mechanism"] == "SCRAM-SHA-256"


def test_a_client_certificate_that_does_not_load_names_the_file_and_never_prompts(tmp_path: Path) -> None:
    from streams.broker.secured import CertificateAuthority

    ca = CertificateAuthority(tmp_path / "ca")
    identity = ca.issue("worker", key_password="k3y-pass")
    base = {"security_protocol": "SSL", "ssl_cafile": ca.certificate, "ssl_certfile": identity.certificate, "ssl_keyfile": identity.key}
    context = client_options(Settings(**base, ssl_key_password="k3y-pass"))["ssl_context"]
    assert context.check_hostname and context.verify_mode.name == "CERT_REQUIRED"
    for password in (None, "wrong"):
        with pytest.raises(TlsSettingsInvalid, match="BORDERFLOW_SSL_CERTFILE .* encrypted key") as refused:
            client_options(Settings(**base, ssl_key_password=password))
        assert "k3y-pass" not in str(refused.value) and (password is None or password not in str(refused.value))

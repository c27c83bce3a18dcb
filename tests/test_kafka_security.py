"""Kafka TLS / SASL settings: validated at start-up, naming the variable; what the clients get."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from services.common.kafka_security import aiokafka_kwargs, faust_credentials, security_protocol
from services.common.settings import SettingsError, load_settings


@pytest.mark.parametrize(("env", "message"), [
    ({"PRESETTLE_KAFKA_SASL_MECHANISM": "PLAIN"}, "PRESETTLE_KAFKA_SASL_USERNAME is required"),
    ({"PRESETTLE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "PRESETTLE_KAFKA_SASL_USERNAME": "presettle"},
     "PRESETTLE_KAFKA_SASL_PASSWORD"),
    ({"PRESETTLE_KAFKA_SASL_USERNAME": "presettle", "PRESETTLE_KAFKA_SASL_PASSWORD": "pw"},
     "without PRESETTLE_KAFKA_SASL_MECHANISM"),
    ({"PRESETTLE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "PRESETTLE_KAFKA_SASL_MECHANISM"),
    ({"PRESETTLE_KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "PRESETTLE_KAFKA_SSL_CAFILE='/nonexistent/ca.pem'"),
    ({"PRESETTLE_KAFKA_TLS": "maybe"}, "PRESETTLE_KAFKA_TLS"),
])
def test_bad_kafka_security_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings(env)


def test_plaintext_by_default() -> None:
    s = load_settings({})
    assert security_protocol(s) == "PLAINTEXT" and aiokafka_kwargs(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(s) is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls(mechanism: str, tmp_path: Path) -> None:
    import faust

    password = tmp_path / "sasl_password"
    password.write_text("s3cret-sasl-password\n", encoding="utf-8")
    s = load_settings({"PRESETTLE_KAFKA_TLS": "true", "PRESETTLE_KAFKA_SASL_MECHANISM": mechanism,
                       "PRESETTLE_KAFKA_SASL_USERNAME": "presettle",
                       "PRESETTLE_KAFKA_SASL_PASSWORD_FILE": str(password)})
    kwargs = aiokafka_kwargs(s)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == mechanism
    assert kwargs["sasl_plain_username"] == "presettle" and kwargs["sasl_plain_password"] == "s3cret-sasl-password"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext) and kwargs["ssl_context"].check_hostname
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials) and creds.mechanism.value == mechanism
    assert creds.protocol.value == "SASL_SSL" and creds.password == "s3cret-sasl-password"
    assert "s3cret" not in repr(s), "the SASL password is a secret"
    plain = load_settings({"PRESETTLE_KAFKA_SASL_MECHANISM": mechanism, "PRESETTLE_KAFKA_SASL_USERNAME": "u",
                           "PRESETTLE_KAFKA_SASL_PASSWORD": "p"})
    assert aiokafka_kwargs(plain)["security_protocol"] == "SASL_PLAINTEXT" and "ssl_context" not in aiokafka_kwargs(plain)


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    import faust

    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=client",
                    "-keyout", "client.key", "-out", "client.pem"], cwd=tmp_path, check=True, capture_output=True)
    env = {"PRESETTLE_KAFKA_SSL_CAFILE": str(tmp_path / "client.pem"),
           "PRESETTLE_KAFKA_SSL_CERTFILE": str(tmp_path / "client.pem"),
           "PRESETTLE_KAFKA_SSL_KEYFILE": str(tmp_path / "client.key"),
           "PRESETTLE_KAFKA_SSL_CHECK_HOSTNAME": "false"}
    s = load_settings(env)
    kwargs = aiokafka_kwargs(s)
    assert kwargs["security_protocol"] == "SSL" and not kwargs["ssl_context"].check_hostname
    assert isinstance(faust_credentials(s), faust.SSLCredentials)
    with pytest.raises(SettingsError, match="PRESETTLE_KAFKA_SSL_CERTFILE"):
        load_settings({**env, "PRESETTLE_KAFKA_SSL_KEYFILE": str(tmp_path / "client.pem")})  # not a key
    with pytest.raises(SettingsError, match="PRESETTLE_KAFKA_SSL_KEYFILE is set without"):
        load_settings({"PRESETTLE_KAFKA_SSL_KEYFILE": str(tmp_path / "client.key")})


def test_every_kafka_client_takes_the_security_settings() -> None:
    """Every place that builds an aiokafka client passes the TLS/SASL settings (a static check)."""
    root = Path(__file__).resolve().parents[1]
    checked = 0
    for path in [*(root / "services").rglob("*.py"), root / "deploy" / "topics.py", *(root / "loadtest").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        for call in ("AIOKafkaProducer(", "AIOKafkaConsumer(", "AIOKafkaAdminClient("):
            start = 0
            while (i := text.find(call + "bootstrap_servers", start)) >= 0 or (
                    i := text.find(call + "\n", start)) >= 0:
                start = i + 1
                end = text.find("\n\n", i)
                args = text[i:end]
                assert "security" in args or "aiokafka_kwargs" in args, f"{path.name}: {args[:160]}"
                checked += 1
    assert checked >= 7, checked  # ingress producer/consumer, live-page consumer, admin (2), bench tools
    assert "broker_credentials=faust_credentials(settings)" in (root / "services/stream/app.py").read_text()

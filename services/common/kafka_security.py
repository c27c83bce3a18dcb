"""TLS and SASL for every Kafka client, from the settings: one place builds what aiokafka and faust need.

``PRESETTLE_KAFKA_TLS`` (or a CA / client certificate) turns TLS on; ``PRESETTLE_KAFKA_SASL_MECHANISM``
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) with ``..._USERNAME`` and ``..._PASSWORD`` (or
``PRESETTLE_KAFKA_SASL_PASSWORD_FILE``) turns SASL on; both together give SASL_SSL.
:func:`aiokafka_kwargs` goes into every ``AIOKafkaProducer``/``Consumer``/``AdminClient``;
:func:`faust_credentials` into the worker's ``broker_credentials``. See docs/operations.md,
*Kafka security*.
"""

from __future__ import annotations

import os
import ssl
from typing import Any, Protocol


class KafkaSecuritySettings(Protocol):
    """What this module reads from the settings (services.common.settings.Settings)."""

    @property
    def kafka_tls(self) -> bool: ...
    @property
    def kafka_ssl_cafile(self) -> str | None: ...
    @property
    def kafka_ssl_certfile(self) -> str | None: ...
    @property
    def kafka_ssl_keyfile(self) -> str | None: ...
    @property
    def kafka_ssl_key_password(self) -> Any: ...
    @property
    def kafka_ssl_check_hostname(self) -> bool: ...
    @property
    def kafka_sasl_mechanism(self) -> str | None: ...
    @property
    def kafka_sasl_username(self) -> str | None: ...
    @property
    def kafka_sasl_password(self) -> Any: ...


class KafkaSecurityError(ValueError):
    """The Kafka security settings do not fit together (the message names the variable)."""


def tls_on(s: KafkaSecuritySettings) -> bool:
    return bool(s.kafka_tls or s.kafka_ssl_cafile or s.kafka_ssl_certfile)


def security_protocol(s: KafkaSecuritySettings) -> str:
    if s.kafka_sasl_mechanism:
        return "SASL_SSL" if tls_on(s) else "SASL_PLAINTEXT"
    return "SSL" if tls_on(s) else "PLAINTEXT"


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def check_kafka_security(s: KafkaSecuritySettings) -> None:
    """Raise KafkaSecurityError (a ValueError) for settings that cannot work together."""
    for name, path in (("PRESETTLE_KAFKA_SSL_CAFILE", s.kafka_ssl_cafile),
                       ("PRESETTLE_KAFKA_SSL_CERTFILE", s.kafka_ssl_certfile),
                       ("PRESETTLE_KAFKA_SSL_KEYFILE", s.kafka_ssl_keyfile)):
        if path and not os.path.isfile(path):
            raise KafkaSecurityError(f"{name}={path!r}: no such file")
    if s.kafka_ssl_keyfile and not s.kafka_ssl_certfile:
        raise KafkaSecurityError("PRESETTLE_KAFKA_SSL_KEYFILE is set without PRESETTLE_KAFKA_SSL_CERTFILE")
    if s.kafka_sasl_mechanism:
        if not s.kafka_sasl_username:
            raise KafkaSecurityError(f"PRESETTLE_KAFKA_SASL_USERNAME is required with "
                                     f"PRESETTLE_KAFKA_SASL_MECHANISM={s.kafka_sasl_mechanism}")
        if not _secret(s.kafka_sasl_password):
            raise KafkaSecurityError(f"PRESETTLE_KAFKA_SASL_PASSWORD (or PRESETTLE_KAFKA_SASL_PASSWORD_FILE) is "
                                     f"required with PRESETTLE_KAFKA_SASL_MECHANISM={s.kafka_sasl_mechanism}")
    elif s.kafka_sasl_username or _secret(s.kafka_sasl_password):
        raise KafkaSecurityError("PRESETTLE_KAFKA_SASL_USERNAME / PRESETTLE_KAFKA_SASL_PASSWORD are set without "
                                 "PRESETTLE_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
    if tls_on(s):
        ssl_context(s)  # a bad CA or certificate fails here, at start-up, naming the file


def ssl_context(s: KafkaSecuritySettings) -> ssl.SSLContext | None:
    """The TLS context for the brokers (None without TLS)."""
    if not tls_on(s):
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=s.kafka_ssl_cafile or None)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaSecurityError(f"PRESETTLE_KAFKA_SSL_CAFILE={s.kafka_ssl_cafile!r}: not a CA bundle ({exc})") from None
    context.check_hostname = bool(s.kafka_ssl_check_hostname)
    context.verify_mode = ssl.CERT_REQUIRED
    if s.kafka_ssl_certfile:
        try:
            context.load_cert_chain(s.kafka_ssl_certfile, s.kafka_ssl_keyfile or None,
                                    password=_secret(s.kafka_ssl_key_password))
        except (ssl.SSLError, OSError) as exc:
            raise KafkaSecurityError(f"PRESETTLE_KAFKA_SSL_CERTFILE / PRESETTLE_KAFKA_SSL_KEYFILE: cannot load the "
                                     f"client certificate ({exc})") from None
    return context


def aiokafka_kwargs(s: KafkaSecuritySettings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client (producer, consumer, admin)."""
    kwargs: dict[str, Any] = {"security_protocol": security_protocol(s)}
    context = ssl_context(s)
    if context is not None:
        kwargs["ssl_context"] = context
    if s.kafka_sasl_mechanism:
        kwargs.update(sasl_mechanism=s.kafka_sasl_mechanism, sasl_plain_username=s.kafka_sasl_username,
                      sasl_plain_password=_secret(s.kafka_sasl_password))
    return kwargs


def faust_credentials(s: KafkaSecuritySettings) -> Any:
    """faust's ``broker_credentials`` (None: plaintext)."""
    import faust  # only the worker needs faust

    context = ssl_context(s)
    if s.kafka_sasl_mechanism:
        return faust.SASLCredentials(username=s.kafka_sasl_username, password=_secret(s.kafka_sasl_password),
                                     ssl_context=context, mechanism=s.kafka_sasl_mechanism)
    if context is not None:
        return faust.SSLCredentials(context)
    return None

"""Settings read from the environment: the only place that reads ``PRESETTLE_*``.

Every value is checked when read; a bad value stops the process with a message
naming the variable, instead of surfacing later as a confusing failure.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from functools import lru_cache


class SettingsError(ValueError):
    """A PRESETTLE_* environment variable has a value we cannot use."""


# Development keys: used by `make run` and the tests when PRESETTLE_API_KEYS is
# unset. Documented in README.md; refused when PRESETTLE_ENV=production.
DEV_API_KEYS = {"dev-key-h1": "H1", "dev-key-h2": "H2"}
DEV_ADMIN_KEYS = frozenset({"dev-admin-key"})
DEV_PSEUDONYM_KEY = "presettle-dev"


def _int(env: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{name}={value} is outside {lo}..{hi}")
    return value


def parse_api_keys(raw: str, name: str = "PRESETTLE_API_KEYS") -> dict[str, str]:
    """``"key1:INST1,key2:INST2"`` → ``{"key1": "INST1", ...}``."""
    keys: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, institution = part.partition(":")
        key, institution = key.strip(), institution.strip()
        if not sep or not key or not institution:
            raise SettingsError(f"{name}: entry {part[:4]}… is not 'key:INSTITUTION'")
        if len(key) < 8:
            raise SettingsError(f"{name}: the key for {institution} is shorter than 8 characters")
        keys[key] = institution
    if not keys:
        raise SettingsError(f"{name} is set but holds no 'key:INSTITUTION' entry")
    return keys


def parse_admin_keys(raw: str) -> frozenset[str]:
    keys = frozenset(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise SettingsError("PRESETTLE_ADMIN_KEYS is set but holds no key")
    if any(len(k) < 8 for k in keys):
        raise SettingsError("PRESETTLE_ADMIN_KEYS: every key needs at least 8 characters")
    return keys


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    kafka_bootstrap: str | None = None  # None: start the embedded broker
    embedded_broker_port: int = 19092
    topic_prefix: str = "presettle"
    partitions: int = 8
    replication_factor: int = 1
    budget_ms: int = 300
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    fetch_max_wait_ms: int = 5
    instance_id: str = field(default_factory=socket.gethostname)
    api_keys: dict[str, str] = field(default_factory=lambda: dict(DEV_API_KEYS))
    admin_keys: frozenset[str] = DEV_ADMIN_KEYS
    dev_keys: bool = True
    worker_metrics_port: int = 9101
    workers: int = 1
    data_dir: str = ".data"
    audit_retention_days: int = 365
    pseudonym_key: str = DEV_PSEUDONYM_KEY
    worker_name: str = ""

    # Topic names -------------------------------------------------------
    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def decisions_topic(self) -> str:
        return f"{self.topic_prefix}.decisions"

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}.patient-status"

    @property
    def feedback_topic(self) -> str:
        return f"{self.topic_prefix}.feedback"

    @property
    def worker_app_id(self) -> str:
        return f"{self.topic_prefix}-worker"

    @property
    def state_changelog_topic(self) -> str:
        # faust names a table's changelog "<app id>-<table name>-changelog".
        return f"{self.worker_app_id}-patient_state-changelog"

    def reply_topic(self, instance: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in instance)
        return f"{self.topic_prefix}.replies.{safe}"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    mode = env.get("PRESETTLE_ENV", "development").strip() or "development"
    if mode not in {"development", "test", "production"}:
        raise SettingsError(f"PRESETTLE_ENV={mode!r} is not development, test or production")
    raw_keys = env.get("PRESETTLE_API_KEYS", "").strip()
    raw_admin = env.get("PRESETTLE_ADMIN_KEYS", "").strip()
    dev_keys = not raw_keys
    if mode == "production" and (not raw_keys or not raw_admin):
        missing = "PRESETTLE_API_KEYS" if not raw_keys else "PRESETTLE_ADMIN_KEYS"
        raise SettingsError(
            f"PRESETTLE_ENV=production refuses development keys: set {missing}"
        )
    api_keys = parse_api_keys(raw_keys) if raw_keys else dict(DEV_API_KEYS)
    admin_keys = parse_admin_keys(raw_admin) if raw_admin else DEV_ADMIN_KEYS
    if mode == "production" and (set(api_keys) & set(DEV_API_KEYS) or admin_keys & DEV_ADMIN_KEYS):
        raise SettingsError("PRESETTLE_ENV=production refuses the documented development keys")
    pseudonym_key = env.get("PRESETTLE_PSEUDONYM_KEY", "").strip() or DEV_PSEUDONYM_KEY
    if mode == "production" and (pseudonym_key == DEV_PSEUDONYM_KEY or len(pseudonym_key) < 16):
        raise SettingsError(
            "PRESETTLE_ENV=production refuses the development pseudonym key: set PRESETTLE_PSEUDONYM_KEY "
            "(16+ characters, secret)"
        )
    prefix = env.get("PRESETTLE_TOPIC_PREFIX", "presettle").strip() or "presettle"
    if not all(c.isalnum() or c in "-_." for c in prefix):
        raise SettingsError(f"PRESETTLE_TOPIC_PREFIX={prefix!r}: use letters, digits, '-', '_', '.'")
    http_port = _int(env, "PRESETTLE_HTTP_PORT", 8000, 1, 65535)
    return Settings(
        env=mode,
        kafka_bootstrap=env.get("PRESETTLE_KAFKA_BOOTSTRAP", "").strip() or None,
        embedded_broker_port=_int(env, "PRESETTLE_EMBEDDED_BROKER_PORT", 19092, 1, 65535),
        topic_prefix=prefix,
        partitions=_int(env, "PRESETTLE_PARTITIONS", 8, 1, 1024),
        replication_factor=_int(env, "PRESETTLE_REPLICATION_FACTOR", 1, 1, 7),
        budget_ms=_int(env, "PRESETTLE_BUDGET_MS", 300, 1, 60_000),
        http_host=env.get("PRESETTLE_HTTP_HOST", "127.0.0.1").strip() or "127.0.0.1",
        http_port=http_port,
        fetch_max_wait_ms=_int(env, "PRESETTLE_FETCH_MAX_WAIT_MS", 5, 1, 10_000),
        instance_id=env.get("PRESETTLE_INSTANCE_ID", "").strip()
        or f"{socket.gethostname()}-{http_port}",
        api_keys=api_keys,
        admin_keys=admin_keys,
        dev_keys=dev_keys,
        worker_metrics_port=_int(env, "PRESETTLE_WORKER_METRICS_PORT", 9101, 0, 65535),
        workers=_int(env, "PRESETTLE_WORKERS", 1, 1, 16),
        data_dir=env.get("PRESETTLE_DATA_DIR", "").strip() or ".data",
        audit_retention_days=_int(env, "PRESETTLE_AUDIT_RETENTION_DAYS", 365, 1, 36500),
        pseudonym_key=pseudonym_key,
        worker_name=env.get("PRESETTLE_WORKER_NAME", "").strip(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()

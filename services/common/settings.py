"""Settings read from the environment: the only place that reads ``PRESETTLE_*``.

One pydantic-settings model: each field has its one default here, reads the variable
``PRESETTLE_<FIELD NAME>``, and is checked when read; a bad value stops the process with a
message naming the variable (``SettingsError``), instead of surfacing later as a confusing
failure. Secrets (API keys, admin keys, the pseudonym key) are ``SecretStr``: they never
appear in a repr or a log line. A ``PRESETTLE_*`` variable that names no field is reported
at start-up (a misspelt variable would otherwise be ignored silently).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from services.common.kafka_security import check_kafka_security
from services.common.secrets_policy import WeakSecretError, check_production_secrets, read_secret_files, weakness
from services.contracts import topics

log = logging.getLogger("presettle.settings")

PREFIX = "PRESETTLE_"


class SettingsError(ValueError):
    """A PRESETTLE_* environment variable has a value we cannot use."""


# Development keys: used by `make run` and the tests when PRESETTLE_API_KEYS is
# unset. Documented in README.md; refused when PRESETTLE_ENV=production.
DEV_API_KEYS = {"dev-key-h1": "H1", "dev-key-h2": "H2"}
DEV_ADMIN_KEYS = frozenset({"dev-admin-key"})
DEV_PSEUDONYM_KEY = "presettle-dev"

# PRESETTLE_* variables read by the client tools (load tests, test set-up), not by the
# service: not reported as unknown.
CLIENT_VARIABLES = frozenset({
    "PRESETTLE_API_KEY", "PRESETTLE_INSTITUTION", "PRESETTLE_BENCH_INSTITUTION", "PRESETTLE_URL",
    "PRESETTLE_THINK_S", "PRESETTLE_TRIGGER_SHARE", "PRESETTLE_KB_DIR", "PRESETTLE_SEED",
    "PRESETTLE_SKIP_SYSTEM_SETUP", "PRESETTLE_ADMIN_KEY",
})


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


class StaffKey(NamedTuple):
    """An agency staff key: its role, its scope (a region code or ``*``) and the person's name."""

    role: Literal["reviewer", "senior_reviewer"]
    scope: str
    name: str


# Development staff keys (only when PRESETTLE_STAFF_KEYS is unset and not in production).
DEV_STAFF_KEYS = {
    "dev-reviewer-key": StaffKey("reviewer", "*", "reviewer-1"),
    "dev-reviewer2-key": StaffKey("reviewer", "*", "reviewer-2"),
    "dev-senior-key": StaffKey("senior_reviewer", "*", "senior-1"),
}


def parse_staff_keys(raw: str, name: str = "PRESETTLE_STAFF_KEYS") -> dict[str, StaffKey]:
    """``"key:role:scope[:name],…"`` → ``{key: StaffKey}`` (role reviewer | senior_reviewer, scope a region or *)."""
    out: dict[str, StaffKey] = {}
    for n, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        bits = [b.strip() for b in part.split(":")]
        if len(bits) not in (3, 4) or not all(bits):
            raise SettingsError(f"{name}: entry {n + 1} is not 'key:role:scope[:name]'")
        key, role, scope = bits[:3]
        if len(key) < 8:
            raise SettingsError(f"{name}: the key of entry {n + 1} is shorter than 8 characters")
        if role not in ("reviewer", "senior_reviewer"):
            raise SettingsError(f"{name}: entry {n + 1}: role {role!r} is not reviewer or senior_reviewer")
        if scope != "*" and not (scope.isdigit() and 2 <= len(scope) <= 12):
            raise SettingsError(f"{name}: entry {n + 1}: scope {scope!r} is not a region code or *")
        person = bits[3] if len(bits) == 4 else f"{role}-{hashlib.sha256(key.encode()).hexdigest()[:6]}"
        out[key] = StaffKey(role, scope, person)  # type: ignore[arg-type]
    if not out:
        raise SettingsError(f"{name} is set but holds no 'key:role:scope' entry")
    return out


REVIEW_STEPS = ("open", "initial_review", "appealed", "re_review")


def parse_deadlines(raw: str) -> dict[str, int]:
    """``"15"`` or ``"15,appealed=10"`` → days per review step (a bare number: every step not named)."""
    default, named = 15, {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        step, sep, days = part.rpartition("=")
        step = step.strip()
        if sep and step not in REVIEW_STEPS:
            raise ValueError(f"unknown step {step!r}; steps: {', '.join(REVIEW_STEPS)}")
        if not days.strip().isdigit() or not 1 <= int(days) <= 365:
            raise ValueError(f"{part!r}: days must be a whole number from 1 to 365")
        if sep:
            named[step] = int(days)
        else:
            default = int(days)
    return {step: named.get(step, default) for step in REVIEW_STEPS}


def parse_admin_keys(raw: str) -> frozenset[str]:
    keys = frozenset(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise SettingsError("PRESETTLE_ADMIN_KEYS is set but holds no key")
    if any(len(k) < 8 for k in keys):
        raise SettingsError("PRESETTLE_ADMIN_KEYS: every key needs at least 8 characters")
    return keys


# -- dialect drop-in authentication (NHSA gateway signature, CDS Hooks JWT) ---------------
def parse_paasids(raw: str, name: str = "PRESETTLE_NHSA_PAASIDS") -> dict[str, tuple[str, str]]:
    """``"paasid:secret:INSTITUTION,…"`` → ``{paasid: (secret, institution)}``."""
    out: dict[str, tuple[str, str]] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        bits = [b.strip() for b in part.split(":")]
        if len(bits) != 3 or not all(bits):
            raise SettingsError(f"{name}: entry {part[:4]}… is not 'paasid:secret:INSTITUTION'")
        paasid, secret, institution = bits
        if len(secret) < 16:
            raise SettingsError(f"{name}: the secret of paasid {paasid} is shorter than 16 characters")
        out[paasid] = (secret, institution)
    return out


def parse_cds_issuers(raw: str, name: str = "PRESETTLE_CDS_ISSUERS") -> dict[str, dict[str, Any]]:
    """JSON (inline, or ``@path`` to a file): ``{"<iss>": {"institution": "H1", "jwks": {...}}}``; instead of
    ``jwks`` an entry may name ``jwks_file`` (a path) or ``jwks_url`` (fetched by the ingress)."""
    text = raw.strip()
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"{name}: cannot read {text[1:]} ({exc.strerror})") from None
    try:
        doc = json.loads(text)
    except ValueError:
        raise SettingsError(f"{name} is not JSON (or @path to a JSON file)") from None
    if not isinstance(doc, dict):
        raise SettingsError(f"{name}: expected an object of issuer → {{institution, jwks|jwks_file|jwks_url}}")
    for iss, entry in doc.items():
        if not isinstance(entry, dict) or not str(entry.get("institution") or "").strip():
            raise SettingsError(f"{name}: issuer {iss!r} needs an 'institution'")
        sources = [k for k in ("jwks", "jwks_file", "jwks_url") if entry.get(k)]
        if len(sources) != 1:
            raise SettingsError(f"{name}: issuer {iss!r} needs exactly one of jwks, jwks_file, jwks_url")
        url = str(entry.get("jwks_url") or "")
        if url and not url.startswith(("http://", "https://")):
            raise SettingsError(f"{name}: issuer {iss!r}: jwks_url must be an http(s) URL")
    return doc


# The mapping load_settings() reads instead of os.environ (None: os.environ).
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("presettle_settings_environ", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of ``os.environ``; blank values are unset."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Blank (empty or whitespace) means unset: the field's default.
        environ = {k: v for k, v in self._environ.items() if v.strip()}
        return parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class Settings(BaseSettings):
    """Every setting of the service; variable ``PRESETTLE_<FIELD>`` (README.md, Configuration)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, case_sensitive=False, env_ignore_empty=True, str_strip_whitespace=True,
        extra="ignore", frozen=True,
    )

    env: Literal["development", "test", "production"] = "development"
    kafka_bootstrap: str | None = None  # None: start the embedded broker
    embedded_broker_port: int = Field(19092, ge=1, le=65535)
    # Set by the stack (make run) for its children when it started the embedded broker: the ingress
    # then watches its partition lengths (services/ingress/embedded_watch.py).
    embedded_broker: bool = False
    # Records in one partition past which the embedded broker is reported degraded (0: not watched).
    embedded_partition_limit: int = Field(1000, ge=0, le=100_000_000)
    # Seconds between two readings of the embedded broker's partition lengths.
    embedded_watch_s: float = Field(10.0, gt=0, le=3600)
    # A replaced reply topic is deleted this long after its last waiting request was answered
    # (workers stop tracking a reply topic after half of it without a reply).
    reply_topic_delete_after_s: float = Field(180.0, ge=20, le=86_400)
    # Kafka connection security (services/common/kafka_security.py; docs/operations.md).
    kafka_tls: bool = False  # TLS to the brokers (implied by a CA or client certificate)
    kafka_ssl_cafile: str | None = None  # CA bundle (PEM) to verify the brokers; unset: the system CAs
    kafka_ssl_certfile: str | None = None  # client certificate (PEM), for mutual TLS
    kafka_ssl_keyfile: str | None = None  # its private key (PEM)
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    topic_prefix: str = "presettle"
    partitions: int = Field(8, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1, le=7)
    budget_ms: int = Field(300, ge=1, le=60_000)
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    fetch_max_wait_ms: int = Field(5, ge=1, le=10_000)
    instance_id: str = ""  # empty: "<hostname>-<http_port>"
    api_keys: SecretStr | None = None  # "key:INSTITUTION,…"; None: the development keys
    admin_keys: SecretStr | None = None  # "key,…"; None: the development admin key
    worker_metrics_port: int = Field(9101, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=16)
    data_dir: str = ".data"
    # The workers' table store (services/stream/store.py): RocksDB files under data_dir, or memory
    # (rebuilt from the changelog on every start).
    store: Literal["rocksdict://", "memory://"] = "rocksdict://"
    # RocksDB memory of one worker (services/stream/store.py): one block cache for every table partition,
    # the memtables charged to it.
    rocksdb_memory_mb: int = Field(64, ge=8, le=65536)
    rocksdb_write_buffer_kb: int = Field(4096, ge=64, le=262_144)  # one memtable of one table partition
    # Table-store reads/writes failing in a row before the worker exits (code 75) to be restarted.
    store_failure_limit: int = Field(3, ge=1, le=10_000)
    # Debug only (services/stream/memtrace.py): the worker traces its allocations (tracemalloc, slow)
    # and appends a report of what grew to this file every tracemalloc_interval_s seconds.
    tracemalloc_file: str = ""
    tracemalloc_interval_s: float = Field(60.0, ge=1.0, le=3600.0)
    standby_replicas: int = Field(1, ge=0, le=7)  # warm copies of each state partition on other workers
    audit_retention_days: int = Field(365, ge=1, le=36500)
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)
    worker_name: str = ""
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: JSON lines unless stderr is a terminal
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"  # PreSettle's loggers (services/common/logs.py)
    # dialect drop-in (docs/integration.md): NHSA gateway signature, CDS Hooks JWT and prefetch fallback
    nhsa_paasids: SecretStr | None = None  # "paasid:secret:INSTITUTION,…"
    nhsa_signature_window_s: int = Field(300, ge=1, le=86_400)
    cds_issuers: str | None = None  # JSON or @file: {"<iss>": {"institution", "jwks"|"jwks_file"|"jwks_url"}}
    cds_service_url: str | None = None  # our public base URL: JWT aud = <url>/cds-services/<id>
    cds_api_key: bool = True  # X-API-Key accepted on the CDS Hooks services
    cds_jwt_max_age_s: int = Field(300, ge=10, le=3600)  # iat no older than this; jti remembered as long
    cds_fhir_timeout_ms: int = Field(1000, ge=10, le=60_000)  # prefetch fallback, within the request budget
    cds_fhir_servers: str = ""  # allowed fhirServer URL prefixes, comma-separated (empty: any, not in production)
    rulebase_dir: str | None = None  # None: the rule base packaged with the service (services/data)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)  # larger request bodies answer 413
    # POST /v1/admin/rulebase only: a bundle the size of the national catalogues is several MiB.
    max_bundle_bytes: int = Field(64 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    # The live page (/dashboard*); unset: on, except when env is production.
    dashboard_enabled: bool | None = None
    # The decision log (services/decisionlog; docs/decisionlog.md).
    database_url: SecretStr | None = None  # None: SQLite at <data_dir>/decisionlog.sqlite3; or postgresql://…
    sink_enabled: bool = True  # `make run` / the stack start the decision-log sink
    sink_metrics_port: int = Field(9190, ge=0, le=65535)  # the sink's /metrics (0: none)
    staff_keys: SecretStr | None = None  # agency staff: "key:role:scope[:name],…" (reviewer | senior_reviewer)
    # 办理时限: "15" (every step) or "15,appealed=10,re_review=20" (a default and per-state days)
    review_deadline_days: str = "15"

    _institutions: dict[str, str] = PrivateAttr(default_factory=dict)
    _admin: frozenset[str] = PrivateAttr(default=frozenset())
    _paasids: dict[str, tuple[str, str]] = PrivateAttr(default_factory=dict)
    _cds_issuers: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    _staff: dict[str, StaffKey] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        return init_settings, _MappingEnvSource(settings_cls, os.environ if environ is None else environ)

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _log_case(cls, value: object, info: Any) -> object:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("store", mode="before")
    @classmethod
    def _store_url(cls, value: object) -> object:
        if isinstance(value, str) and "://" not in value:
            return value.strip().lower() + "://"  # "rocksdict" or "memory"
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("use letters, digits, '-', '_', '.'")
        return value

    @model_validator(mode="after")
    def _keys(self) -> Settings:
        api = self.api_keys.get_secret_value() if self.api_keys else ""
        admin = self.admin_keys.get_secret_value() if self.admin_keys else ""
        if self.env == "production" and (not api or not admin):
            missing = "PRESETTLE_API_KEYS" if not api else "PRESETTLE_ADMIN_KEYS"
            raise SettingsError(f"PRESETTLE_ENV=production refuses development keys: set {missing}")
        self._institutions = parse_api_keys(api) if api else dict(DEV_API_KEYS)
        self._admin = parse_admin_keys(admin) if admin else DEV_ADMIN_KEYS
        if self.env == "production":  # placeholders, short or shared keys (services/common/secrets_policy.py)
            try:
                check_production_secrets(self._institutions, self._admin, self.pseudonym_key.get_secret_value(),
                                         DEV_PSEUDONYM_KEY)
            except WeakSecretError as exc:
                raise SettingsError(f"PRESETTLE_ENV=production: {exc}") from None
        check_kafka_security(self)  # SASL without a username, a missing CA file, … (names the variable)
        if not self.instance_id:
            object.__setattr__(self, "instance_id", f"{socket.gethostname()}-{self.http_port}")
        return self

    @model_validator(mode="after")
    def _staff_and_database(self) -> Settings:
        raw = self.staff_keys.get_secret_value() if self.staff_keys else ""
        if not raw and self.env != "production":
            self._staff = dict(DEV_STAFF_KEYS)
        else:
            self._staff = parse_staff_keys(raw) if raw else {}
        if self.env == "production":
            for key, staff in self._staff.items():
                why = weakness(key)
                if why:
                    raise SettingsError(f"PRESETTLE_STAFF_KEYS: the key of {staff.name} {why}")
        clash = set(self._staff) & (set(self._institutions) | set(self._admin))
        if clash:
            raise SettingsError("PRESETTLE_STAFF_KEYS: a staff key is also an institution or admin key")
        url = self.database_url.get_secret_value() if self.database_url else ""
        if url and not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise SettingsError("PRESETTLE_DATABASE_URL: use postgresql://… or sqlite:///path")
        return self

    @field_validator("review_deadline_days")
    @classmethod
    def _deadlines(cls, value: str) -> str:
        parse_deadlines(value)
        return value

    @property
    def review_deadlines(self) -> dict[str, int]:
        """Days per review step (services/decisionlog/workflow.py)."""
        return parse_deadlines(self.review_deadline_days)

    def staff_for(self, key: str) -> StaffKey | None:
        """The agency staff member a key belongs to (None for another or an unknown key)."""
        return self._staff.get(key)

    def staff_key_list(self) -> dict[str, StaffKey]:
        return dict(self._staff)

    @property
    def database(self) -> str:
        """The decision log's database URL: PRESETTLE_DATABASE_URL, else SQLite under the data directory."""
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(Path(self.data_dir) / 'decisionlog.sqlite3').resolve()}"

    @model_validator(mode="after")
    def _dialect_auth(self) -> Settings:
        self._paasids = parse_paasids(self.nhsa_paasids.get_secret_value()) if self.nhsa_paasids else {}
        self._cds_issuers = parse_cds_issuers(self.cds_issuers) if self.cds_issuers else {}
        if self.cds_service_url:
            object.__setattr__(self, "cds_service_url", self.cds_service_url.rstrip("/"))
        return self

    def paasid(self, paasid: str) -> tuple[str, str] | None:
        """(secret, institution) of a gateway paasid (None when unknown)."""
        return self._paasids.get(paasid)

    @property
    def cds_issuer_map(self) -> dict[str, dict[str, Any]]:
        """Allowed CDS client issuers → {institution, jwks | jwks_file | jwks_url}."""
        return self._cds_issuers

    @property
    def cds_fhir_server_list(self) -> tuple[str, ...]:
        return tuple(u.strip().rstrip("/") for u in self.cds_fhir_servers.split(",") if u.strip())

    # Keys ---------------------------------------------------------------
    @property
    def dev_keys(self) -> bool:
        """True when PRESETTLE_API_KEYS is unset: the documented development keys are in use."""
        return self.api_keys is None

    def institution_for(self, api_key: str) -> str | None:
        """The institution an API key belongs to (None for an unknown key)."""
        return self._institutions.get(api_key)

    def is_admin_key(self, key: str) -> bool:
        return key in self._admin

    def institution_keys(self) -> dict[str, str]:
        """Every API key → its institution (start-up banner of the development keys)."""
        return dict(self._institutions)

    def admin_key_list(self) -> list[str]:
        return sorted(self._admin)

    @property
    def dashboard_on(self) -> bool:
        """Whether the live page is served: PRESETTLE_DASHBOARD_ENABLED, else off only in production."""
        return self.env != "production" if self.dashboard_enabled is None else self.dashboard_enabled

    # Topic names -------------------------------------------------------
    @property
    def events_topic(self) -> str:
        return topics.events_topic(self.topic_prefix)

    @property
    def decisions_topic(self) -> str:
        return topics.decisions_topic(self.topic_prefix)

    @property
    def status_topic(self) -> str:
        return topics.status_topic(self.topic_prefix)

    @property
    def feedback_topic(self) -> str:
        return topics.feedback_topic(self.topic_prefix)

    @property
    def alert_index_topic(self) -> str:
        # Keyed by decision id: issued alerts and feedback checks (services/rules/alert_index.py).
        return f"{self.topic_prefix}.alert-index"

    @property
    def alert_index_changelog_topic(self) -> str:
        return f"{self.worker_app_id}-alert_index-changelog"

    @property
    def deadletter_topic(self) -> str:
        return topics.deadletter_topic(self.topic_prefix)

    @property
    def rulebase_topic(self) -> str:
        return topics.rulebase_topic(self.topic_prefix)

    @property
    def provider_status_topic(self) -> str:
        return topics.provider_status_topic(self.topic_prefix)

    @property
    def worker_app_id(self) -> str:
        return topics.worker_app_id(self.topic_prefix)

    @property
    def state_changelog_topic(self) -> str:
        return topics.state_changelog_topic(self.topic_prefix)

    def reply_topic(self, instance: str) -> str:
        return topics.reply_topic(self.topic_prefix, instance)

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.embedded_broker_port}"


def variable(field_name: str) -> str:
    """The environment variable of a settings field."""
    return PREFIX + field_name.upper()


def variables() -> dict[str, str]:
    """Every variable the service reads → its field name."""
    return {variable(name): name for name in Settings.model_fields}


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """``PRESETTLE_*`` variables in ``env`` that no setting (nor client tool) reads."""
    known = set(variables()) | CLIENT_VARIABLES
    return sorted(k for k in env if k.upper().startswith(PREFIX) and k.upper() not in known)


def _message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, SettingsError):
            msg = str(ctx_error)
        if not err["loc"]:
            parts.append(msg)
            continue
        name = variable(str(err["loc"][0]))
        if msg.startswith(name):
            parts.append(msg)
        elif str(err["loc"][0]) in {"api_keys", "admin_keys", "pseudonym_key", "nhsa_paasids", "kafka_sasl_password",
                                    "kafka_ssl_key_password", "staff_keys", "database_url"}:
            parts.append(f"{name}: {msg}")  # never echo a secret
        else:
            parts.append(f"{name}={err.get('input')!r}: {msg}")
    return "; ".join(parts)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment); SettingsError names the variable.

    Warns (one log line) about ``PRESETTLE_*`` variables that no setting reads.
    """
    try:  # NAME_FILE=/run/secrets/… is read as NAME (secrets mounted as files)
        environ: Mapping[str, str] = read_secret_files(os.environ if env is None else env)
    except WeakSecretError as exc:
        raise SettingsError(str(exc)) from None
    token = _ENVIRON.set(environ)
    try:
        loaded = Settings()
    except ValidationError as exc:
        raise SettingsError(_message(exc)) from None
    finally:
        _ENVIRON.reset(token)
    unknown = unknown_variables(environ)
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name.upper(), list(variables()), n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        log.warning("unknown PRESETTLE_* variables, ignored: %s", ", ".join(hints))
    return loaded


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit(prog: str = "presettle") -> Settings:
    """The settings of a command's process; a bad value ends the process with one line naming the
    variable (``[prog] configuration error: PRESETTLE_…``) and exit code 2, not a traceback."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"[{prog}] configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

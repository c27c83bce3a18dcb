"""Topic definitions: each service topic's name, partitions, configs and codecs.

Names derive from one prefix (``PRESETTLE_TOPIC_PREFIX``); every input topic is keyed by
patient id and has the state changelog's partition count (co-partitioning). Values are
JSON (orjson), keys UTF-8 ids (:data:`KEY`, :data:`JSON`).

Configs:

* the per-patient state changelog is compacted: with a delete policy a restarted
  worker would rebuild patient state without anything older than the retention, and
  the 31-, 90- and 365-day rule windows would miss history;
* the audit topic (every decision) keeps ``audit_retention_days``;
* the inputs keep 7 days (replay after an incident), feedback 90 days, dead letters 30 days;
* ``min.insync.replicas=2`` wherever the replication factor is 3 or more;
* a reply topic keeps an hour: a reply is useless seconds after it was written;
* the rule-base topic (published rule-base revisions, services/contracts/rulebase.py) has one
  partition and is compacted: every process reads it from the start at start-up, so it holds
  few records (a bundle is a handful of ≤ 512 KiB chunks) and a revision is kept until deleted;
* the provider-status topic (institution 定点协议 and doctor 医保医师 status records,
  services/contracts/provider_status.py) has one partition and is compacted: every worker reads
  all of it (events are partitioned by patient, any worker may see any provider), one record per
  update (key ``<subject>/<id>/<effective_from>/<updated_at>``), kept until deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

DAY_MS = 24 * 3600 * 1000
STATE_TABLE = "patient_state"  # the worker's table; faust names its changelog after it


class TopicSettings(Protocol):
    """What the topic definitions read from the settings (services.common.settings.Settings)."""

    @property
    def events_topic(self) -> str: ...
    @property
    def status_topic(self) -> str: ...
    @property
    def decisions_topic(self) -> str: ...
    @property
    def feedback_topic(self) -> str: ...
    @property
    def deadletter_topic(self) -> str: ...
    @property
    def state_changelog_topic(self) -> str: ...
    @property
    def alert_index_topic(self) -> str: ...
    @property
    def alert_index_changelog_topic(self) -> str: ...
    @property
    def partitions(self) -> int: ...
    @property
    def replication_factor(self) -> int: ...
    @property
    def audit_retention_days(self) -> int: ...
    @property
    def rulebase_topic(self) -> str: ...
    @property
    def provider_status_topic(self) -> str: ...


# -- names -------------------------------------------------------------------------
def events_topic(prefix: str) -> str:
    return f"{prefix}.events"


def decisions_topic(prefix: str) -> str:
    return f"{prefix}.decisions"


def status_topic(prefix: str) -> str:
    return f"{prefix}.patient-status"


def feedback_topic(prefix: str) -> str:
    return f"{prefix}.feedback"


def deadletter_topic(prefix: str) -> str:
    return f"{prefix}.deadletter"


def rulebase_topic(prefix: str) -> str:
    return f"{prefix}.rulebase"


def provider_status_topic(prefix: str) -> str:
    return f"{prefix}.provider-status"


def worker_app_id(prefix: str) -> str:
    return f"{prefix}-worker"


def state_changelog_topic(prefix: str) -> str:
    # faust names a table's changelog "<app id>-<table name>-changelog".
    return f"{worker_app_id(prefix)}-{STATE_TABLE}-changelog"


ALERT_INDEX_TABLE = "alert_index"  # the worker's table of issued alerts (services/stream/alert_index.py)


def alert_index_topic(prefix: str) -> str:
    return f"{prefix}.alert-index"


def alert_index_changelog_topic(prefix: str) -> str:
    return f"{worker_app_id(prefix)}-{ALERT_INDEX_TABLE}-changelog"


def reply_topic(prefix: str, instance: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in instance)
    return f"{prefix}.replies.{safe}"


# -- codecs ------------------------------------------------------------------------
class JsonCodec:
    """Values: one JSON document per record (orjson)."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    @staticmethod
    def loads(data: bytes) -> Any:
        return orjson.loads(data)


class KeyCodec:
    """Keys: an id (patient id, decision id) as UTF-8."""

    @staticmethod
    def dumps(value: str) -> bytes:
        return value.encode()

    @staticmethod
    def loads(data: bytes) -> str:
        return data.decode()


JSON = JsonCodec()
KEY = KeyCodec()


@dataclass(frozen=True)
class Topic:
    """One topic: name, partitions, configs, what its key is and what its values are."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    key: str = "patient id"
    value: str = ""


# -- configs -----------------------------------------------------------------------
REPLY_TOPIC_CONFIG = {"cleanup.policy": "delete", "retention.ms": str(3600 * 1000)}


def service_topic_defs(settings: TopicSettings, audit_retention_days: int | None = None) -> list[Topic]:
    """Every topic the service needs (reply topics aside: one per ingress instance)."""
    days = audit_retention_days or settings.audit_retention_days
    p = settings.partitions
    isr = {"min.insync.replicas": "2"} if settings.replication_factor >= 3 else {}
    inputs = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS), **isr}
    return [
        Topic(settings.events_topic, p, dict(inputs), value="Event.to_wire() (kind in headers: envelope.Kind)"),
        Topic(settings.status_topic, p, dict(inputs), value="PatientStatus.to_wire()"),
        Topic(settings.state_changelog_topic, p,
              {"cleanup.policy": "compact", "min.compaction.lag.ms": str(3600 * 1000), **isr},
              value="patient state (services.rules.state)"),
        Topic(settings.decisions_topic, p,
              {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS), **isr}, value="AuditRecord"),
        Topic(settings.feedback_topic, p,
              {"cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS), **isr},
              key="decision id", value="FeedbackRecord"),
        # issued alerts and feedback checks (services/rules/alert_index.py); the table is compacted
        Topic(settings.alert_index_topic, p,
              {"cleanup.policy": "delete", "retention.ms": str(31 * DAY_MS), **isr},
              key="decision id", value='{"kind": "issued" | "feedback", ...}'),
        Topic(settings.alert_index_changelog_topic, p, {"cleanup.policy": "compact", **isr},
              key="decision id", value="alert index entry (services.rules.alert_index)"),
        Topic(settings.deadletter_topic, p,
              {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS), **isr},
              value="the record the worker could not process, unchanged (dlq_* headers: services.stream.deadletter)"),
        # published rule-base revisions: chunks, manifests, the active pointer (services/contracts/rulebase.py)
        Topic(settings.rulebase_topic, 1,
              {"cleanup.policy": "compact", **isr},
              key="bundle.<revision>.<n> | manifest.<revision> | active", value="rulebase.Manifest / Active / chunk"),
        # institution and doctor status timelines, read whole by every worker (services/common/provider_feed.py)
        Topic(settings.provider_status_topic, 1, {"cleanup.policy": "compact", **isr},
              key="<subject>/<id>/<effective_from>/<updated_at>",
              value="InstitutionStatus / DoctorStatus .to_wire() (with subject)"),
    ]


def topic_configs(settings: TopicSettings, audit_retention_days: int | None = None) -> dict[str, dict[str, str]]:
    """The configs each service topic is created with."""
    return {t.name: t.config for t in service_topic_defs(settings, audit_retention_days)}


def service_topics(settings: TopicSettings) -> dict[str, int]:
    """Every topic the service needs, with its partition count."""
    return {t.name: t.partitions for t in service_topic_defs(settings)}


def reply_topic_def(name: str, partitions: int) -> Topic:
    return Topic(name, partitions, dict(REPLY_TOPIC_CONFIG), key="none", value="envelope.Reply")

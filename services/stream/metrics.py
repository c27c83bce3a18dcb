"""Worker metrics (prometheus-client; base units; no patient ids in labels)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

# The rule-base revision served and the switches, the provider-status records (defined with the feeds).
from services.common.provider_feed import PROVIDERS, RECORDS
from services.common.rulebase_feed import REVISION_INFO, SWITCHES

__all__ = ["PROVIDERS", "RECORDS", "REVISION_INFO", "SWITCHES"]

_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)

EVENTS = Counter("presettle_worker_events_total", "Events decided by the worker, per trigger scene.", ["scene"])
HISTORY = Counter(
    "presettle_worker_history_events_total",
    "Earlier encounters merged into patient history without evaluation (applied, or replayed as duplicates).",
    ["outcome"],
)
DUPLICATES = Counter("presettle_worker_duplicate_events_total", "Retried events answered from the recorded decision.")
ALERTS = Counter("presettle_alerts_total", "Alerts raised, per rule and severity.", ["rule_id", "severity"])
RULE_SECONDS = Histogram("presettle_rule_evaluation_seconds", "Engine time per event (evaluate + apply).", buckets=_FAST)
STATE_BYTES = Histogram(
    "presettle_patient_state_bytes", "Serialized per-patient state size after an update.",
    buckets=(128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536),
)
STATUS_UPDATES = Counter("presettle_patient_status_updates_total", "Insured-status updates folded into patient state.")
RETROSPECTIVE = Counter(
    "presettle_worker_retrospective_findings_total",
    "Retrospective findings (事后) written to the audit topic: earlier claims dated after a death the bureau "
    "recorded late.",
)
FAILURES = Counter("presettle_worker_failures_total", "Messages the worker could not process, per error type.", ["error"])
QUEUE_SECONDS = Histogram(
    "presettle_worker_queue_seconds",
    "Time from the ingress producing an event to the worker starting on it (broker hop + queueing).",
    buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5),
)
REPLY_TOPICS_FORGOTTEN = Counter(
    "presettle_worker_reply_topics_forgotten_total",
    "Reply topics dropped from the producer's metadata after a quiet spell (replaced or gone ingress reply topics).",
)
REPLY_TOPICS_REFOLLOWED = Counter(
    "presettle_worker_reply_topics_refollowed_total",
    "Topics the producer held undelivered records for after its metadata stopped following them, followed "
    "again (0 expected: such a record would hold up every commit until it expired).",
)
REPLIES_SKIPPED = Counter(
    "presettle_worker_replies_skipped_total",
    "Replies not sent: stale (nobody waits any more) or failed (the error type); decisions are still recorded.",
    ["reason"],
)
FEEDBACK_CHECKS = Counter(
    "presettle_worker_feedback_checks_total",
    "Feedback checked against the alert index: recorded, duplicate (already recorded) or unknown (not an alert "
    "issued to the caller's institution).",
    ["status"],
)
FEEDBACK_WITHDRAWALS = Counter(
    "presettle_worker_feedback_withdrawals_total",
    "Accepted feedback (the order was changed, 返回修改) whose alert lines were withdrawn from the patient's "
    "state: a cancellation sent to the patient's partition.",
)
UNPROCESSED_RELEASED = Counter(
    "presettle_worker_unprocessed_released_total",
    "Messages faust skipped during a rebalance (not processed, not committed: read again).",
)
REWINDS = Counter(
    "presettle_worker_rewinds_total",
    "Partitions read again from an offset passed over unfinished (skipped in a rebalance, or a failed produce).",
)
OFFSET_JUMPS = Counter(
    "presettle_worker_offset_jumps_total",
    "Offset gaps faust would have committed over unprocessed (records passed over after a seek in a "
    "rebalance); not committed over, read again.",
)
HIGHWATERS_RAISED = Counter(
    "presettle_worker_highwaters_raised_total",
    "Changelog end offsets (table recovery) raised from the broker's ListOffsets answer to the offset after "
    "the last record (Tansu 0.6 lists the first offset of the last batch + 1).",
)
DEAD_LETTERS = Counter(
    "presettle_worker_dead_letters_total",
    "Records sent to the dead-letter topic instead of being processed, per reason.",
    ["reason"],
)
REPLIES_REFUSED = Counter(
    "presettle_worker_replies_refused_total",
    "Replies dropped because reply_to named no reply topic of this deployment.",
)
BAD_SENT_AT = Counter(
    "presettle_worker_bad_sent_at_total",
    "Events whose sent_at header was unreadable (decided anyway; reply age unknown).",
)
AUDIT_RECOVERED = Counter(
    "presettle_worker_audit_recovered_total",
    "Replays of an event whose audit record was not confirmed: found on the audit topic, or re-sent.",
    ["outcome"],
)
SHADOW_ALERTS = Counter(
    "presettle_shadow_alerts_total",
    "Would-be alerts of rules in mode shadow (recorded in the audit record's shadow_alerts, never sent to the HIS).",
    ["rule_id"],
)
STATE_RESEEDED = Counter(
    "presettle_worker_state_reseeded_records_total",
    "Records written back to a table's changelog from the worker's local store, because the changelog had lost "
    "them (an embedded broker restarted empty), per table.",
    ["table"],
)
ROCKSDB_MEMORY = Gauge(
    "presettle_worker_rocksdb_memory_bytes",
    "RocksDB memory of the worker's table stores: the shared block cache (memtables charged to it) and the "
    "memtables alone; capped by PRESETTLE_ROCKSDB_MEMORY_MB.",
    ["part"],
)
LAG = Gauge("presettle_worker_consumer_lag", "Records behind the partition's high watermark.", ["topic", "partition"])


def record_decision(scene: int, alerts: list[dict[str, Any]], engine_s: float, replayed: bool,
                    shadow_alerts: list[dict[str, Any]] | None = None) -> None:
    if replayed:
        DUPLICATES.inc()
        return
    EVENTS.labels(str(scene)).inc()
    RULE_SECONDS.observe(engine_s)
    for alert in alerts:
        ALERTS.labels(alert["rule_id"], alert.get("severity", "?")).inc()
    for alert in shadow_alerts or ():
        SHADOW_ALERTS.labels(alert["rule_id"]).inc()

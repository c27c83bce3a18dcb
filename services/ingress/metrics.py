"""Ingress metrics (prometheus-client; base units; no patient ids in labels)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5)

HTTP_REQUESTS = Counter(
    "presettle_http_requests_total", "HTTP requests, per route template, method and status.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "presettle_http_request_duration_seconds", "HTTP request duration, per route template, method and status.",
    ["route", "method", "status"], buckets=LATENCY_BUCKETS,
)
DECISION_LATENCY = Histogram(
    "presettle_decision_latency_seconds",
    "End-to-end decision latency seen by the ingress: produce → worker → reply.",
    buckets=LATENCY_BUCKETS,
)
ENGINE_STATUS = Counter("presettle_engine_status_total", "Answers per engine_status.", ["engine_status"])
PRODUCE_FAILURES = Counter(
    "presettle_produce_failures_total",
    "Events the broker did not accept (answered 'unavailable', or answered 'timeout' and lost afterwards).",
)
BUDGET_TIMEOUTS = Counter("presettle_budget_timeouts_total", "Requests whose decision missed the budget.")
EVENTS_IN = Counter("presettle_ingress_events_total", "Events accepted by the ingress, per trigger scene.", ["scene"])
REPLY_TOPIC_ROTATIONS = Counter(
    "presettle_reply_topic_rotations_total",
    "Reply topics replaced by a new, empty one (embedded broker: a reply partition past PRESETTLE_EMBEDDED_PARTITION_LIMIT).",
)
REPLY_BACKLOG = Gauge("presettle_reply_backlog", "Records in this instance's reply topic not yet read.")
PENDING = Gauge("presettle_pending_requests", "Requests waiting for a worker reply.")
BROKER_UP = Gauge("presettle_broker_up", "1 while the Kafka bootstrap servers are reachable.")
EMBEDDED_PARTITION_RECORDS = Gauge(
    "presettle_embedded_broker_partition_records",
    "Records in the embedded broker's longest service partition (only with the embedded broker).",
)
EMBEDDED_DEGRADED = Gauge(
    "presettle_embedded_broker_degraded",
    "1 while a partition of the embedded broker holds more than PRESETTLE_EMBEDDED_PARTITION_LIMIT records.",
)
BROKER_SLOW_PROBES = Counter(
    "presettle_broker_slow_probes_total",
    "Broker probes that took 1 s or more (four in a row make the ingress answer 'unavailable').",
)
FEEDBACK = Counter(
    "presettle_feedback_total", "Doctor feedback on alerts, per rule and outcome (accepted/overridden).",
    ["rule_id", "outcome"],
)

# -- live page (services/ingress/dashboard.py) ----------------------------------
DASHBOARD_CLIENTS = Gauge("presettle_dashboard_clients", "Live-page (/dashboard/stream) connections open.")
DASHBOARD_DECISIONS = Counter(
    "presettle_dashboard_decisions_total", "Audit-topic decisions read by the live page's consumer."
)
DASHBOARD_FEED_UP = Gauge("presettle_dashboard_feed_up", "1 while the live page's audit-topic consumer is assigned.")


def observe_decision(event: Any, outcome: Any, engine_s: float) -> None:
    """Count one decision (services.service_layer.decide's observer)."""
    EVENTS_IN.labels(str(event.scene)).inc()
    ENGINE_STATUS.labels(outcome.status).inc()
    if outcome.status == "evaluated":
        DECISION_LATENCY.observe(engine_s)
    elif outcome.status == "timeout":
        BUDGET_TIMEOUTS.inc()

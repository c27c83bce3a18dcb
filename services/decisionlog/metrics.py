"""The decision-log sink's Prometheus metrics (served on PRESETTLE_SINK_METRICS_PORT)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "presettle_sink_records",
    "Records the decision-log sink read, by topic kind and result (stored, duplicate, skipped, invalid).",
    ["kind", "result"],
)
LAG_RECORDS = Gauge(
    "presettle_sink_lag_records",
    "Records on the sink's topics not yet stored (log end minus the sink's position), by topic kind.",
    ["kind"],
)
LAG_SECONDS = Gauge(
    "presettle_sink_lag_seconds",
    "Age of the newest decision the sink stored when it stored it (now minus decided_at).",
)
WRITE_SECONDS = Histogram(
    "presettle_sink_write_duration_seconds",
    "Time to store one batch in the database (one transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CASES_OPENED = Counter(
    "presettle_sink_cases_opened",
    "Review cases opened by the sink (a decision with alerts at a settlement scene).",
)
RETROSPECTIVE = Counter(
    "presettle_sink_retrospective_findings",
    "Retrospective findings (事后, R42/R43) the sink wrote for decisions inside a provider suspension recorded late.",
)

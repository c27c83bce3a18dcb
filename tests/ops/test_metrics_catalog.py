"""The metrics the issue asks for exist, follow Prometheus conventions, and match the docs table."""

from __future__ import annotations

import re

from tests.ops.helpers import ROOT, exposed_name, metric_objects

# What the issue lists, as (metric family, labels it must have).
REQUIRED = {
    "presettle_http_requests": ("counter", {"route", "status"}),
    "presettle_http_request_duration_seconds": ("histogram", {"route", "status"}),
    "presettle_decision_latency_seconds": ("histogram", set()),
    "presettle_budget_timeouts": ("counter", set()),
    "presettle_engine_status": ("counter", {"engine_status"}),
    "presettle_worker_events": ("counter", {"scene"}),
    "presettle_ingress_events": ("counter", {"scene"}),
    "presettle_alerts": ("counter", {"rule_id", "severity"}),
    "presettle_rule_evaluation_seconds": ("histogram", set()),
    "presettle_patient_state_bytes": ("histogram", set()),
    "presettle_worker_consumer_lag": ("gauge", {"partition"}),
    "presettle_reply_backlog": ("gauge", set()),
    "presettle_feedback": ("counter", {"rule_id", "outcome"}),
}
PATIENT_LABELS = re.compile(r"patient|person|psn|id_?card|mdtrt|name", re.I)


def test_required_metrics_exist_with_their_labels() -> None:
    found = metric_objects()
    for name, (kind, labels) in REQUIRED.items():
        assert name in found, f"missing metric {name}"
        assert found[name][0] == kind, f"{name} is a {found[name][0]}, expected {kind}"
        assert labels <= set(found[name][1]._labelnames), f"{name} lacks labels {labels}"


def test_conventions_prefix_units_and_no_patient_labels() -> None:
    for name, (kind, metric, _) in metric_objects().items():
        assert name.startswith("presettle_"), name
        assert not re.search(r"_(ms|milliseconds|kb|mb|minutes)$", name), f"{name}: use base units"
        for label in metric._labelnames:
            assert not PATIENT_LABELS.search(label), f"{name}: label {label!r} could carry personal data"
        if kind == "histogram" and ("latency" in name or name.endswith("duration_seconds")):
            bounds = [b for b in metric._upper_bounds if b != float("inf")]
            assert bounds[0] == 0.001 and bounds[-1] == 2.5, f"{name}: buckets from 1 ms to 2.5 s"
        assert metric._documentation, f"{name}: needs help text"


def test_docs_table_lists_exactly_the_metrics_in_the_code() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\|\s*`(presettle_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|", section, re.M)
    documented = {name: kind for name, kind in rows}
    in_code = {exposed_name(n, kind): kind for n, (kind, _, _) in metric_objects().items()}
    assert set(documented) == set(in_code), (
        f"undocumented: {sorted(set(in_code) - set(documented))}; "
        f"documented but not in the code: {sorted(set(documented) - set(in_code))}"
    )
    for name, kind in in_code.items():
        assert documented[name] == kind, f"{name}: docs say {documented[name]}, code has {kind}"

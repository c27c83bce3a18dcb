"""The wire contracts: the worker's records and replies match their models, kinds dispatch as the worker does."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from services.contracts import envelope as env
from services.contracts import topics
from services.contracts.decision import HIT_ALERT_KEYS, STATIC_ALERT_KEYS, Alert, AuditRecord, Decision, audit_record
from services.contracts.errors import ErrorBody, error_body
from services.contracts.ids import alert_id_for, decision_id_for, parse_alert_id
from services.rules import decision as dec
from services.rules.engine import Engine
from tests.factories import dx, event

API = pathlib.Path(__file__).resolve().parents[2] / "schemas" / "api"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def _decide(engine: Engine, body: dict, state: bytes | None = None) -> tuple[bytes | None, dict]:
    return dec.handle_event(engine, state, orjson.loads(orjson.dumps(body)))


def test_the_worker_audit_record_matches_the_model_and_the_published_schema(engine: Engine) -> None:
    body = event(gender="F", diagnoses=[dx("N40")])
    _, outcome = _decide(engine, body)
    record = audit_record(body, outcome["decision_id"], outcome["alerts"], outcome["replayed"], 0.4,
                          "2026-03-01T01:00:00+00:00", "worker-1")
    wire = orjson.loads(orjson.dumps(record))
    audit = AuditRecord.model_validate(wire)
    assert audit.alerts and audit.alerts[0].rule_id == "R03" and audit.patient_id == body["patient"]["id"]
    jsonschema.validate(wire, json.loads((API / "audit-record.schema.json").read_text(encoding="utf-8")))
    # the reply the ingress reads carries the same record
    reply = TypeAdapter(env.Reply).validate_json(env.decision_reply(orjson.dumps(record)))
    assert isinstance(reply, env.DecisionReply) and reply.decision.decision_id == outcome["decision_id"]


def test_an_alert_carries_exactly_the_hit_static_and_id_keys(engine: Engine) -> None:
    _, outcome = _decide(engine, event(gender="F", diagnoses=[dx("N40")]))
    for alert in outcome["alerts"]:
        assert set(alert) == {*HIT_ALERT_KEYS, *STATIC_ALERT_KEYS, "alert_id"}
    assert set(Alert.model_fields) == {*HIT_ALERT_KEYS, *STATIC_ALERT_KEYS, "alert_id"}


def test_a_replayed_alert_of_a_retired_rule_version_is_still_a_decision(engine: Engine) -> None:
    body = event(gender="F", diagnoses=[dx("N40")])
    state, first = _decide(engine, body)
    stored = orjson.loads(state or b"{}")[dec.SEEN_KEY][0][3]
    retired = [{**a, "rule_version": "0.0.1"} for a in stored]
    d = Decision(event_id="e", decision_id=first["decision_id"], engine_status="evaluated", latency_ms=1.0,
                 alerts=[{**a, **engine.rule_static(a["rule_id"], a["rule_version"])} for a in retired])
    assert d.alerts[0].gz_code is None and d.alerts[0].message_zh


def test_reply_union_members() -> None:
    adapter = TypeAdapter(env.Reply)
    assert isinstance(adapter.validate_python(env.status_reply("w")), env.StatusReply)
    assert isinstance(adapter.validate_python(env.probe_reply(3, "w")), env.ProbeReply)
    assert isinstance(adapter.validate_python(env.error_reply("boom")), env.ErrorReply)
    with pytest.raises(ValidationError):
        adapter.validate_python({"nothing": 1})


@pytest.mark.parametrize(("headers", "topic", "kind"), [
    ({}, "p.events", env.Kind.event),
    ({env.HISTORY: env.FLAG}, "p.events", env.Kind.history),
    ({env.PROBE: env.FLAG, env.CORRELATION_ID: b"c"}, "p.events", env.Kind.probe),
    ({env.CORRELATION_ID: b"c"}, "p.patient-status", env.Kind.status),
])
def test_kind_of(headers: dict[str, bytes], topic: str, kind: env.Kind) -> None:
    assert env.kind_of(headers, topic, "p.patient-status") is kind


def test_header_map_reads_both_client_shapes() -> None:
    assert env.header_map([(env.SENT_AT, b"1.5")]) == env.header_map({env.SENT_AT: b"1.5"}) == {"sent_at": b"1.5"}
    assert env.header_map(None) == {}
    assert dict(env.history_headers()) == {"history": b"1"} and dict(env.probe_headers()) == {"probe": b"1"}


def test_ids_are_deterministic_and_parse_back() -> None:
    d = decision_id_for("H1", "e-1")
    assert d == decision_id_for("H1", "e-1") != decision_id_for("H2", "e-1") and len(d) == 22
    assert parse_alert_id(alert_id_for(d, "R19", 2)) == (d, "R19", 2)
    assert parse_alert_id("x.R19.1") is None


def test_error_body_shape() -> None:
    body = error_body("invalid_request", "items[0].quantity: too big", "items[0].quantity",
                      [{"field": "items[0].quantity", "message": "too big", "type": "less_than_equal"}])
    assert list(body) == ["error", "field", "message", "errors"]
    ErrorBody.model_validate(body)
    assert error_body("unavailable", "down") == {"error": "unavailable", "message": "down"}


class _S:
    events_topic, status_topic, decisions_topic = "p.events", "p.patient-status", "p.decisions"
    feedback_topic, state_changelog_topic = "p.feedback", "p-worker-patient_state-changelog"
    alert_index_topic, alert_index_changelog_topic = "p.alert-index", "p-worker-alert_index-changelog"
    deadletter_topic, rulebase_topic = "p.deadletter", "p.rulebase"
    provider_status_topic = "p.provider-status"
    partitions, replication_factor, audit_retention_days = 4, 3, 365


def test_topic_definitions() -> None:
    defs = {t.name: t for t in topics.service_topic_defs(_S())}
    assert set(defs) == set(topics.service_topics(_S())) == set(topics.topic_configs(_S()))
    assert defs["p-worker-patient_state-changelog"].config["cleanup.policy"] == "compact"
    assert defs["p.decisions"].config["retention.ms"] == str(365 * topics.DAY_MS)
    assert all(t.partitions == 4 and t.config["min.insync.replicas"] == "2"
               for name, t in defs.items() if name not in ("p.rulebase", "p.provider-status"))
    # The rule-base topic: one partition (one order of publishes and activations), compacted.
    assert defs["p.rulebase"].partitions == 1 and defs["p.rulebase"].config["cleanup.policy"] == "compact"
    assert topics.rulebase_topic("p") == _S.rulebase_topic
    # Provider status: one partition read whole by every worker, compacted (one record per update).
    assert defs["p.provider-status"].partitions == 1
    assert defs["p.provider-status"].config["cleanup.policy"] == "compact"
    assert topics.provider_status_topic("p") == _S.provider_status_topic
    assert topics.state_changelog_topic("p") == _S.state_changelog_topic
    assert topics.reply_topic("p", "host:1/a") == "p.replies.host-1-a"
    assert topics.alert_index_topic("p") == _S.alert_index_topic
    assert topics.alert_index_changelog_topic("p") == _S.alert_index_changelog_topic
    assert defs["p-worker-alert_index-changelog"].config["cleanup.policy"] == "compact"


def test_settings_name_the_topics_as_the_contracts_do() -> None:
    from services.common.settings import load_settings

    s = load_settings({})
    prefix = s.topic_prefix
    assert (s.events_topic, s.status_topic, s.decisions_topic, s.feedback_topic, s.state_changelog_topic,
            s.reply_topic("i-1")) == (
        topics.events_topic(prefix), topics.status_topic(prefix), topics.decisions_topic(prefix),
        topics.feedback_topic(prefix), topics.state_changelog_topic(prefix), topics.reply_topic(prefix, "i-1"))
    assert s.provider_status_topic == topics.provider_status_topic(prefix)
    assert (s.alert_index_topic, s.alert_index_changelog_topic) == (
        topics.alert_index_topic(prefix), topics.alert_index_changelog_topic(prefix))

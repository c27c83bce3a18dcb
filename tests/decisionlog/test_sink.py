"""The sink on a real (embedded) broker: audit, feedback, status and rule-base records into the store,
idempotently; unreadable records counted and skipped; rule-base chunks skipped; lag recorded; a provider
suspension recorded late turns the decisions inside it into retrospective findings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.common.broker import EmbeddedBroker, ensure_topics, free_port, service_topics, topic_configs
from services.common.privacy import pseudonym
from services.common.settings import Settings, load_settings
from services.decisionlog.sink import Sink
from services.decisionlog.store import Store
from tests.decisionlog.test_store import audit


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port()).start()
    yield b
    b.stop()


def test_every_topic_kind_is_stored_once(broker: EmbeddedBroker, tmp_path: Path) -> None:
    env = {"PRESETTLE_KAFKA_BOOTSTRAP": broker.bootstrap, "PRESETTLE_TOPIC_PREFIX": f"s{uuid.uuid4().hex[:8]}",
           "PRESETTLE_PARTITIONS": "2", "PRESETTLE_DATA_DIR": str(tmp_path)}
    s = load_settings(env)
    rec = audit(1, patient="P0042", alerts=1)
    feedback = {"alert_id": rec["alerts"][0]["alert_id"], "decision_id": rec["decision_id"], "rule_id": "R01",
                "outcome": "accepted", "institution_id": "H1", "dialect": "nhsa",
                "received_at": "2026-03-01T01:00:00+00:00"}
    status = {"patient_id": "P0042", "status": "deceased", "effective_from": "2026-02-01",
              "updated_at": "2026-02-02T00:00:00+08:00"}
    records = [
        (s.decisions_topic, b"P0042", orjson.dumps(rec)),
        (s.decisions_topic, b"P0042", orjson.dumps(rec)),  # a replay: stored once
        (s.decisions_topic, b"P0042", b"{not json"),  # unreadable: counted, skipped
        (s.feedback_topic, rec["decision_id"].encode(), orjson.dumps(feedback)),
        (s.status_topic, b"P0042", orjson.dumps(status)),
        (s.rulebase_topic, b"bundle.abc.0", b"\x1f\x8b binary chunk"),  # not stored
        (s.rulebase_topic, b"manifest.abc", orjson.dumps({"revision": "abc", "chunks": 1})),
        (s.rulebase_topic, b"active", orjson.dumps({"revision": "abc", "activated_at": "2026-03-01T00:00:00Z"})),
    ]
    before = {k: sample("presettle_sink_records_total", kind="decisions", result=k)
              for k in ("stored", "duplicate", "invalid")}

    def done(store: Store) -> bool:
        counts = store.counts()
        return (counts["rulebase_revisions"] == 2 and counts["patient_status"] == 1 and counts["feedback"] == 1
                and counts["decisions"] == 1)

    store = asyncio.run(_publish_then_sink(broker, s, records, done, rounds=100))
    assert store.counts() | {"alerts": 1} == {"decisions": 1, "alerts": 1, "feedback": 1, "patient_status": 1,
                                              "rulebase_revisions": 2, "cases": 1}
    got = store.decision(rec["decision_id"])
    assert got is not None and got["feedback"][0]["outcome"] == "accepted"
    stored_status = store.row("SELECT patient_ref, status FROM patient_status")
    assert stored_status == {"patient_ref": pseudonym("P0042"), "status": "deceased"}
    assert "P0042" not in str(store.rows("SELECT record FROM patient_status"))
    assert sample("presettle_sink_records_total", kind="decisions", result="stored") - before["stored"] == 1
    assert sample("presettle_sink_records_total", kind="decisions", result="duplicate") - before["duplicate"] == 1
    assert sample("presettle_sink_records_total", kind="decisions", result="invalid") - before["invalid"] == 1
    assert sample("presettle_sink_records_total", kind="rulebase", result="skipped") >= 1
    assert sample("presettle_sink_lag_records", kind="decisions") == 0
    store.close()


async def _publish_then_sink(broker: EmbeddedBroker, s: Settings, records: list[tuple[str, bytes, bytes]],
                             done: Callable[[Store], bool], rounds: int) -> Store:
    """Send ``records`` (topic, key, value) to the broker, then run a sink until ``done`` (at most
    ``rounds`` polls of 300 ms); the sink's store, open."""
    await ensure_topics(broker.bootstrap, service_topics(s), configs=topic_configs(s))
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    store = Store.open(s.database)
    sink = Sink(s, store)
    await sink.start()
    try:
        for _ in range(rounds):
            await sink.run_once(timeout_ms=300)
            if done(store):
                break
    finally:
        await sink.close()
    return store


def _decision(n: int, institution: str, day: int, scene: int = 6, rule: str | None = None,
              doctor: str = "D1", department: str = "A03") -> dict[str, Any]:
    rec = audit(n, institution=institution, patient=f"P{n:04d}", scene=scene, alerts=0, day=day)
    rec.update(decided_at=f"2026-03-{day:02d}T02:00:00+00:00", doctor_id=doctor, department=department)
    if rule:
        rec["alerts"] = [{"rule_id": rule, "rule_version": "1.0.0", "message_zh": "m", "message_en": "m", "line_ids": [],
                          "amount": 5.0, "evidence": [], "region": "default", "alert_id": f"{rec['decision_id']}.{rule}.1",
                          "severity": "C"}]
    return rec


def test_a_provider_suspension_recorded_late_finds_the_decisions_inside_it(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """H7's 定点协议 suspended 03-03..03-10, recorded 03-20: its settlements on 03-05 and 03-08 are found
    (R42, scene 0, a case each); not the one before, the order-entry decision, the one flagged live, or
    another institution's. Doctor D9 suspended from 03-06, recorded 03-20: the emergency department's
    settlement is exempt. Read twice (the sink restarted without committing), nothing is stored twice."""
    env = {"PRESETTLE_KAFKA_BOOTSTRAP": broker.bootstrap, "PRESETTLE_TOPIC_PREFIX": f"r{uuid.uuid4().hex[:8]}",
           "PRESETTLE_PARTITIONS": "2", "PRESETTLE_DATA_DIR": str(tmp_path)}
    s = load_settings(env)
    decisions = [_decision(1, "H7", 2), _decision(2, "H7", 5), _decision(3, "H7", 8, doctor="D9"),
                 _decision(4, "H7", 6, scene=2), _decision(5, "H7", 9, rule="R42"), _decision(6, "H8", 5),
                 _decision(7, "H8", 7, doctor="D9"), _decision(8, "H8", 7, doctor="D9", department="A22"),
                 _decision(9, "H7", 12)]
    institution = {"subject": "institution", "institution_id": "H7", "status": "suspended", "effective_from": "2026-03-03",
                   "effective_to": "2026-03-10", "reason": "违规使用基金", "document_no": "医保函〔2026〕7号",
                   "updated_at": "2026-03-20T09:00:00+08:00"}
    doctor = {"subject": "doctor", "doctor_id": "D9", "status": "suspended", "effective_from": "2026-03-06",
              "updated_at": "2026-03-20T10:00:00+08:00", "reason": "记分达到暂停标准"}

    def read_provider() -> float:
        return sample("presettle_sink_records_total", kind="provider", result="stored")

    async def run(records: list[tuple[str, bytes, bytes]], until: int, providers: float = 0.0) -> Store:
        return await _publish_then_sink(
            broker, s, records, lambda store: store.counts()["decisions"] >= until and read_provider() >= providers,
            rounds=60)

    # the decisions first (stored long before the bureau's record, as in life), then the two records
    asyncio.run(run([(s.decisions_topic, f"P{n:04d}".encode(), orjson.dumps(d)) for n, d in enumerate(decisions, 1)],
                    len(decisions))).close()
    late = [(s.provider_status_topic, b"institution|H7", orjson.dumps(institution)),
            (s.provider_status_topic, b"doctor|D9", orjson.dumps(doctor))]
    before = sample("presettle_sink_retrospective_findings_total")
    store = asyncio.run(run(late, len(decisions) + 4))
    found = store.rows("SELECT decision_id, event_id, institution_id, day FROM decisions WHERE scene = 0 "
                       "ORDER BY day, institution_id, decision_id")
    rules = {r["decision_id"]: [a["rule_id"] for a in store.decision(r["decision_id"])["alerts"]]  # type: ignore[index]
             for r in found}
    assert sorted((r["event_id"], r["institution_id"], r["day"], rules[r["decision_id"]][0]) for r in found) == [
        ("e2", "H7", "2026-03-05", "R42"), ("e3", "H7", "2026-03-08", "R42"), ("e3", "H7", "2026-03-08", "R43"),
        ("e7", "H8", "2026-03-07", "R43")]
    assert sample("presettle_sink_retrospective_findings_total") - before == 4
    r42 = store.decision(next(r["decision_id"] for r in found if r["event_id"] == "e2"))
    assert r42 is not None and r42["retrospective"] is True and r42["scene"] is None
    [alert] = r42["alerts"]
    assert "H7" in alert["message_zh"] and "2026-03-03至2026-03-10暂停" in alert["message_zh"]
    assert [e.get("decision_id") for e in alert["evidence"]] == [decisions[1]["decision_id"], None]
    assert alert["evidence"][1]["document_no"] == "医保函〔2026〕7号"
    assert r42["case"]["state"] == "open" and r42["patient_ref"] == pseudonym("P0002")
    store.close()
    # the same records again (the sink's offsets lost, or the bureau re-sent them): nothing new
    again = asyncio.run(run(late, len(decisions) + 4, providers=read_provider() + 2))
    assert len(again.rows("SELECT decision_id FROM decisions WHERE scene = 0")) == 4
    again.close()


def test_a_decision_stored_after_its_suspension_was_read_is_found_too(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """The lag case: H6's suspension (03-03..03-10, recorded 03-20 09:00) is read before the sink has
    stored the settlements it concerns (they were still in its lag). Each decision stored afterwards is
    looked at against the timeline: the 03-05 settlement decided 03-05 gets its R42 finding, not the one
    decided after the record (the worker's to flag live), the order-entry decision, the one already
    flagged, or the one outside the period; read again via the record's side, nothing is stored twice."""
    env = {"PRESETTLE_KAFKA_BOOTSTRAP": broker.bootstrap, "PRESETTLE_TOPIC_PREFIX": f"g{uuid.uuid4().hex[:8]}",
           "PRESETTLE_PARTITIONS": "2", "PRESETTLE_DATA_DIR": str(tmp_path)}
    s = load_settings(env)
    record = {"subject": "institution", "institution_id": "H6", "status": "suspended", "effective_from": "2026-03-03",
              "effective_to": "2026-03-10", "reason": "违规使用基金", "updated_at": "2026-03-20T09:00:00+08:00"}
    after = _decision(12, "H6", 6)
    after["decided_at"] = "2026-03-21T02:00:00+00:00"  # decided after the record: not retrospective
    decisions = [_decision(11, "H6", 5), after, _decision(13, "H6", 7, scene=2), _decision(14, "H6", 8, rule="R42"),
                 _decision(15, "H6", 12)]
    provider = [(s.provider_status_topic, b"institution|H6", orjson.dumps(record))]

    def read_provider() -> float:
        return sample("presettle_sink_records_total", kind="provider", result="stored")

    # the record alone first: no decision stored yet, so the record's side finds nothing
    read0 = read_provider()
    asyncio.run(_publish_then_sink(broker, s, provider, lambda _: read_provider() >= read0 + 1, rounds=60)).close()
    before = sample("presettle_sink_retrospective_findings_total")
    store = asyncio.run(_publish_then_sink(
        broker, s, [(s.decisions_topic, f"P{n:04d}".encode(), orjson.dumps(d)) for n, d in enumerate(decisions, 11)],
        lambda st: st.counts()["decisions"] >= len(decisions) + 1, rounds=60))
    found = store.rows("SELECT decision_id, event_id FROM decisions WHERE scene = 0")
    assert [r["event_id"] for r in found] == ["e11"]
    got = store.decision(found[0]["decision_id"])
    assert got is not None and [a["rule_id"] for a in got["alerts"]] == ["R42"]
    assert got["alerts"][0]["evidence"][0]["decision_id"] == decisions[0]["decision_id"]
    assert got["case"]["state"] == "open"
    assert sample("presettle_sink_retrospective_findings_total") - before == 1
    store.close()
    # the bureau re-sends the record: the record's side reaches the same finding, stored once
    again = asyncio.run(_publish_then_sink(broker, s, provider, lambda _: read_provider() >= read0 + 2, rounds=60))
    assert [r["event_id"] for r in again.rows("SELECT event_id FROM decisions WHERE scene = 0")] == ["e11"]
    again.close()

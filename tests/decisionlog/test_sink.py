"""The sink on a real (embedded) broker: audit, feedback, status and rule-base records into the store,
idempotently; unreadable records counted and skipped; rule-base chunks skipped; lag recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.common.broker import EmbeddedBroker, ensure_topics, free_port, service_topics, topic_configs
from services.common.privacy import pseudonym
from services.common.settings import load_settings
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

    async def run() -> Store:
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
            for _ in range(100):
                await sink.run_once(timeout_ms=300)
                if store.counts()["rulebase_revisions"] == 2 and store.counts()["patient_status"] == 1 \
                        and store.counts()["feedback"] == 1 and store.counts()["decisions"] == 1:
                    break
        finally:
            await sink.stop()
        return store

    store = asyncio.run(run())
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

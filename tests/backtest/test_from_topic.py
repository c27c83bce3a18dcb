"""``presettle backtest --from-topic``: the events topic of a real (embedded) broker as the source.

Events are produced as the ingress does (key = patient id; a history record, which is applied to
the state but not evaluated, and a probe, which is left out; one record that is no valid event),
then the command reads the topic from ``--since`` and must replay exactly the valid events.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from loadtest.gen_events import generate
from services import cli
from services.common.broker import EmbeddedBroker, ensure_topics, free_port
from services.contracts import envelope as env
from services.contracts import topics
from services.rules.engine import DEFAULT_DATA

pytestmark = pytest.mark.e2e


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    await ensure_topics(bootstrap, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def test_the_events_topic_is_a_source(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broker = EmbeddedBroker(free_port()).start()
    try:
        prefix = f"bt{uuid.uuid4().hex[:8]}"
        events = generate(600, days=60, seed=3)
        records = [(e["patient"]["id"].encode(), orjson.dumps(e), []) for e in events]
        earlier = dict(events[0], event_id="HIST-1")  # an earlier encounter a dialect merged into the history
        records.append((earlier["patient"]["id"].encode(), orjson.dumps(earlier), env.history_headers()))
        records.append((b"P1", b"{}", env.probe_headers()))
        records.append((b"P1", orjson.dumps(dict(events[1], scene=0)), []))
        asyncio.run(produce(broker.bootstrap, topics.events_topic(prefix), records))
        candidate = tmp_path / "candidate"
        for section in ("rules", "kb"):
            shutil.copytree(DEFAULT_DATA / section, candidate / section, ignore=shutil.ignore_patterns("__pycache__"))
        doc = json.loads((candidate / "rules" / "R18.json").read_text(encoding="utf-8"))
        doc["rule"]["parameters"]["default_days"] = 5
        (candidate / "rules" / "R18.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        monkeypatch.setenv("PRESETTLE_KAFKA_BOOTSTRAP", broker.bootstrap)
        monkeypatch.setenv("PRESETTLE_TOPIC_PREFIX", prefix)
        out = tmp_path / "r.json"
        assert cli.main(["backtest", "--from-topic", "--since", "1h", "--candidate", str(candidate),
                         "--json", str(out)]) == 0
        report = json.loads(out.read_text(encoding="utf-8"))
        assert report["events"] == len(events)  # not the history record, the probe or the invalid one
        assert report["history"] == 1  # applied to the state, not evaluated
        assert report["invalid_lines"]["count"] == 1 and "scene" in report["invalid_lines"]["first"][0]["error"]
        assert report["changed_rules"] == ["R18"] and report["rules"]["R18"]["lost"] == 0
        assert cli.main(["backtest", "--from-topic", "--since", "2999-01-01T00:00:00Z", "--candidate",
                         str(candidate), "--json", str(out)]) == 0
        assert json.loads(out.read_text(encoding="utf-8"))["events"] == 0  # nothing written since then
    finally:
        broker.stop()

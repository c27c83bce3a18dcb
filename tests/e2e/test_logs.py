"""Logs as an operator reads them: JSON lines in log files, no terminal escape codes, no patient ids, and
one request id from the HTTP request through the Kafka headers to the worker's log lines and the audit
record. A stack of its own with PRESETTLE_LOG_LEVEL=DEBUG (one worker line per decision)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.stack import Stack
from tests.conftest import ARTIFACTS, start_stack
from tests.factories import dx, event, uid
from tests.ops.helpers import wait_for

pytestmark = pytest.mark.e2e

LOG_DIR = ARTIFACTS / "logs" / "logs-json"
ANSI = re.compile(r"\x1b\[|\x1b\]|\x1b[()][0-9A-B]|[\x08\r]")


@pytest.fixture(scope="module")
def debug_stack() -> Iterator[Stack]:
    for old in LOG_DIR.glob("*.log"):
        old.unlink()
    s = start_stack("logs-json", PRESETTLE_LOG_LEVEL="DEBUG")  # stderr is a file: JSON by default
    yield s
    s.stop()


def json_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert not ANSI.search(text), f"terminal escape codes in {path.name}: {ANSI.search(text)!r}"
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is one JSON object


async def audit_record(bootstrap: str, topic: str, decision_id: str) -> dict[str, Any] | None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    value = orjson.loads(r.value)
                    if value["decision_id"] == decision_id:
                        return value
    finally:
        await consumer.stop()
    return None


def test_request_id_travels_to_the_worker_log_and_the_audit_record(debug_stack: Stack) -> None:
    patient = uid("PLOG")
    rid = f"his-{uid('req')}"
    with httpx.Client(base_url=debug_stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as http:
        r = http.post("/v1/events", json=event(patient=patient, gender="F", diagnoses=[dx("N40")]),
                      headers={"X-Request-ID": rid})
        assert r.status_code == 200 and r.json()["engine_status"] == "evaluated", r.text
        assert r.headers["x-request-id"] == rid
        decision_id = r.json()["decision_id"]
        # No id, or one that is not a plain token: the ingress makes one and says which.
        generated = http.get("/v1/rules").headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", generated)
        for bad_id in ("two words", "x" * 200, "{\"json\": 1}"):
            bad = http.post("/v1/events", json=event(), headers={"X-Request-ID": bad_id})
            assert re.fullmatch(r"[0-9a-f]{32}", bad.headers["x-request-id"]), bad_id
        refused = http.post("/v1/events", json=event(), headers={"X-API-Key": "unknown-key"})
        assert refused.status_code == 401 and refused.headers["x-request-id"]

    worker_log = LOG_DIR / "worker-0.log"
    lines = wait_for(lambda: [line for line in json_lines(worker_log) if line.get("request_id") == rid],
                     timeout=30, what=f"a worker log line with request id {rid}")
    line = lines[0]
    assert line["component"] == "worker" and line["logger"] == "presettle.worker" and line["level"] == "DEBUG"
    assert decision_id in line["message"] and "R03" in line["message"]

    record = asyncio.run(audit_record(debug_stack.bootstrap, debug_stack.settings.decisions_topic, decision_id))
    assert record is not None and record["request_id"] == rid

    for name in ("worker-0.log", "ingress.log"):
        text = (LOG_DIR / name).read_text(encoding="utf-8")
        assert patient not in text, f"a patient id in {name}"
        entries = json_lines(LOG_DIR / name)
        assert entries, name
        # Library loggers stay at WARNING or above, whatever faust does to the root logger.
        noisy = [e for e in entries if e["logger"].split(".")[0] in ("aiokafka", "faust", "mode")
                 and e["level"] in ("DEBUG", "INFO")]
        assert not noisy, noisy[:3]
    assert any(e["component"] == "ingress" and "ready" in e["message"] for e in json_lines(LOG_DIR / "ingress.log"))
    # uvloop runs both of the worker's loops: the main one and faust's consumer thread's.
    loops = [e["message"] for e in json_lines(worker_log) if e["message"].startswith("event loops:")]
    assert loops == ["event loops: {'main': 'uvloop', 'consumer_thread': 'uvloop'}"], loops

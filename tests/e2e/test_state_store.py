"""Patient state on the worker's disk (rocksdict://) outlives an embedded broker that restarts empty.

Real parts: the embedded Tansu broker, the faust worker process, the ingress over HTTP, and the
stack's own supervisor (as ``make run``), which restarts a dead broker empty and the worker with it.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
import urllib.request

import httpx
import pytest

from services.stack import Stack
from tests.conftest import start_stack
from tests.e2e.test_chaos import Supervisor
from tests.e2e.test_core_path import ATORVASTATIN_A, ATORVASTATIN_B, _audit_records, post, rule_ids
from tests.factories import drug, dx, event, uid

pytestmark = pytest.mark.e2e


def worker_metric(stack: Stack, name: str, labels: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.settings.worker_metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_r19_history_survives_an_embedded_broker_restarted_empty() -> None:
    stack = start_stack("state-store-broker", PRESETTLE_STORE="rocksdict://")
    try:
        assert stack.broker is not None and stack.broker.proc is not None, "this test needs the embedded broker"
        patient = uid("P")
        with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as h1:
            first = post(h1, event(patient=patient, institution="H1", occurred_at="2026-03-01T09:00:00+08:00",
                                   diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_A, 30, 30)]))
        assert "R19" not in rule_ids(first)
        # The audit record is written only after the state's changelog record was acknowledged:
        # once it is on the audit topic, the worker's store holds the state and its offset.
        records = asyncio.run(_audit_records(stack.bootstrap, stack.settings.decisions_topic, first["decision_id"],
                                             settle_s=1.0))
        assert len(records) == 1

        with Supervisor(stack):
            stack.broker.proc.send_signal(signal.SIGKILL)
            deadline = time.monotonic() + 120
            while stack.restarts["broker"] < 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert stack.restarts["broker"] == 1  # restarted empty; the worker restarted against it
            stack.wait_healthy(120)

            with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h2"}, timeout=30) as h2:
                # 10 days later 20 of 30 days remain: R19 needs the prescription from before the restart.
                second = post(h2, event(patient=patient, institution="H2", occurred_at="2026-03-11T10:00:00+08:00",
                                        diagnoses=[dx("I10")], items=[drug(ATORVASTATIN_B, 30, 30)]))
        alert = next((a for a in second["alerts"] if a["rule_id"] == "R19"), None)
        assert alert is not None, second
        assert alert["evidence"][0]["institution_id"] == "H1" and alert["evidence"][0]["date"] == "2026-03-01"
        # The worker said what it did: the changelog re-seeded from its store.
        assert worker_metric(stack, "presettle_worker_state_reseeded_records_total", 'table="patient_state"') >= 1
        log = (stack.log_dir / "worker-0.log").read_text() if stack.log_dir else ""
        assert "re-seeding the changelog from the local store" in log
    finally:
        stack.stop()

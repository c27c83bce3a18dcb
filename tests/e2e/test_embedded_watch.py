"""The embedded broker watch on a real stack: past PRESETTLE_EMBEDDED_PARTITION_LIMIT records in a partition,
/healthz says the broker is degraded (still 200), the metric is 1 and the ingress log says what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from services.stack import Stack
from tests.conftest import ARTIFACTS, start_stack
from tests.factories import event, uid
from tests.ops.helpers import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def small_limit() -> Iterator[Stack]:
    s = start_stack("embedded-watch", PRESETTLE_EMBEDDED_PARTITION_LIMIT="30")
    yield s
    s.stop()


def test_the_session_stack_reports_an_ok_embedded_broker(client: httpx.Client) -> None:
    health = client.get("/healthz").json()
    assert health["ok"] and health["broker"] == "ok", health


def test_a_long_partition_makes_the_embedded_broker_degraded(small_limit: Stack) -> None:
    with httpx.Client(base_url=small_limit.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as http:
        first = http.get("/healthz")
        assert first.status_code == 200 and first.json()["broker"] == "ok", first.text
        patient = uid("PWATCH")  # one patient: one partition of the events, changelog and audit topics
        for n in range(40):
            r = http.post("/v1/events", json=event(patient=patient, event_id=f"{patient}-{n}"))
            assert r.status_code == 200 and r.json()["engine_status"] == "evaluated", r.text

        def degraded() -> dict[str, object] | None:
            health = http.get("/healthz")
            return health.json() if health.json().get("broker") == "degraded" else None
        health = wait_for(degraded, timeout=40, interval=1.0, what="/healthz reporting a degraded broker")
        assert health["ok"] is True  # degraded is not down: the worker round trip still works
        longest = health["broker_longest_partition"]
        assert isinstance(longest, dict) and longest["records"] > 30 and longest["limit"] == 30
        exposition = http.get("/metrics").text
    assert "presettle_embedded_broker_degraded 1.0" in exposition
    lines = [json.loads(line) for line in (ARTIFACTS / "logs" / "embedded-watch" / "ingress.log").read_text().splitlines()
             if line.startswith("{")]
    warnings = [e["message"] for e in lines if "embedded broker degraded" in e["message"]]
    assert len(warnings) == 1 and "PRESETTLE_KAFKA_BOOTSTRAP" in warnings[0], warnings

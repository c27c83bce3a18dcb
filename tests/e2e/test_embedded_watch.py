"""The embedded broker watch on a real stack: past PRESETTLE_EMBEDDED_PARTITION_LIMIT records in a partition,
/healthz says the broker is degraded (still 200), the metric is 1 and the ingress log says what to do."""

from __future__ import annotations

import asyncio
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


@pytest.fixture(scope="module")
def rotating() -> Iterator[Stack]:
    s = start_stack("reply-rotation", PRESETTLE_EMBEDDED_PARTITION_LIMIT="6", PRESETTLE_EMBEDDED_WATCH_S="0.3",
                    PRESETTLE_PARTITIONS="2", PRESETTLE_REPLY_TOPIC_DELETE_AFTER_S="20")
    yield s
    s.stop()


def _reply_topics(stack: Stack) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def names() -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.settings.bootstrap)
        await admin.start()
        try:
            return sorted(t for t in await admin.list_topics() if ".replies." in t)
        finally:
            await admin.close()
    return asyncio.run(names())


def test_a_full_reply_topic_is_rotated_without_losing_a_reply(rotating: Stack) -> None:
    """Requests keep flowing (eight at a time, so some are always waiting) while the reply topic is
    replaced again and again: every one is answered, and the replaced topics are deleted."""
    async def load() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=rotating.url, headers={"X-API-Key": "dev-key-h1"}, timeout=60) as http:
            answers: list[httpx.Response] = []
            for batch in range(25):
                answers += await asyncio.gather(*(
                    http.post("/v1/events", params={"budget_ms": "20000"},
                              json=event(patient=uid("PROT"), event_id=uid(f"rot{batch}-{n}-")))
                    for n in range(8)))
                await asyncio.sleep(0.3)  # spread over several watch rounds
            return answers

    answers = asyncio.run(load())
    assert [r.status_code for r in answers] == [200] * 200, {r.status_code for r in answers}
    statuses = [r.json()["engine_status"] for r in answers]
    assert statuses == ["evaluated"] * 200, {s: statuses.count(s) for s in set(statuses)}
    with httpx.Client(base_url=rotating.url, timeout=30) as http:
        exposition = http.get("/metrics").text
    rotations = next(float(line.split()[-1]) for line in exposition.splitlines()
                     if line.startswith("presettle_reply_topic_rotations_total"))
    assert rotations >= 2, exposition  # 200 replies over 2 partitions, limit 6: many rotations
    # Replaced topics are deleted 20 s after nobody waits on them (workers stop asking for their
    # metadata after 10 s, so the embedded broker does not re-create them): the current one remains.
    seen: list[str] = []

    def settled() -> list[str] | None:
        seen[:] = _reply_topics(rotating)
        return seen if len(seen) == 1 else None
    try:
        remaining = wait_for(settled, timeout=60, interval=1.0, what="the replaced reply topics deleted")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; reply topics: {seen}") from None
    assert any(t.rsplit("-r", 1)[-1].isdigit() for t in remaining), remaining

"""The core scenario on Apache Kafka from testcontainers, where a Docker engine exists."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import start_stack
from tests.e2e.test_core_path import ATORVASTATIN_A, ATORVASTATIN_B, post, rule_ids
from tests.factories import drug, dx, event, uid

pytestmark = pytest.mark.e2e


def _docker_engine() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return None
    except Exception as exc:  # no daemon, no socket, no permission
        return f"no Docker engine reachable ({type(exc).__name__}); the same scenario runs on the embedded broker"


def test_core_scenario_on_apache_kafka() -> None:
    reason = _docker_engine()
    if reason:
        pytest.skip(reason)
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer() as kafka:
        stack = start_stack("testcontainers", PRESETTLE_KAFKA_BOOTSTRAP=kafka.get_bootstrap_server(),
                            PRESETTLE_FETCH_MAX_WAIT_MS="100")
        try:
            with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as c:
                assert "R03" in rule_ids(post(c, event(gender="F", diagnoses=[dx("N40")])))
                patient = uid("P")
                post(c, event(patient=patient, occurred_at="2026-03-01T09:00:00+08:00",
                              items=[drug(ATORVASTATIN_A, 30, 30)]))
                again = post(c, event(patient=patient, occurred_at="2026-03-08T09:00:00+08:00",
                                      items=[drug(ATORVASTATIN_B, 30, 30)]))
                assert "R19" in rule_ids(again)
        finally:
            stack.stop()

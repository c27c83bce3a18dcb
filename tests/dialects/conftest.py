"""Fixtures for the dialect tests: the real engine in-process, and the ingress app without a broker.

``InProcessEngine`` stands in for ``EngineClient``: it applies events with the worker's
own arithmetic (services.rules.decision + Engine.process, as services/stream/app.py's
``handle_event`` does), so router tests exercise the real rules without Kafka.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.settings import load_settings
from services.contracts import envelope as env
from services.contracts.gateway import Outcome
from services.rules import alert_index as index
from services.rules import decision as dec
from services.rules import state as state_codec
from services.rules.engine import Engine

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load()


class InProcessEngine:
    """EngineClient's interface (submit, publish, available) over an in-memory patient state."""

    def __init__(self, engine: Engine, events_topic: str, alert_index_topic: str = "presettle.alert-index",
                 feedback_topic: str = "presettle.feedback") -> None:
        self.engine = engine
        self.events_topic = events_topic
        self.alert_index_topic = alert_index_topic
        self.feedback_topic = feedback_topic
        self.index: dict[bytes, dict[str, Any]] = {}  # the worker's alert index (services/stream/alert_index.py)
        self.states: dict[bytes, bytes] = {}
        self.published: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self.applied: list[str] = []  # event ids applied (not answered from the idempotency record)
        self.withdrawals: list[str] = []  # cancellations sent for accepted feedback
        self.available = True
        self.answer = "evaluated"  # or "timeout": decide, but do not answer in time

    def handle(self, key: bytes, event: dict[str, Any], evaluate: bool = True) -> dict[str, Any]:
        # The worker's own per-event logic (services.rules.decision.handle_event), minus the broker.
        new_bytes, outcome = dec.handle_event(self.engine, self.states.get(key), event, evaluate=evaluate)
        if new_bytes is not None:
            self.states[key] = new_bytes
            self.applied.append(event["event_id"])
        if outcome["alerts"]:  # as the worker: the alerts are issued before the HIS sees them
            d = outcome["decision_id"].encode()
            self.index[d] = index.issue(self.index.get(d), event["institution"]["id"],
                                        [a["alert_id"] for a in outcome["alerts"]], 0,
                                        index.withdrawal_basis(event, outcome["alerts"]))
        return outcome

    def check_feedback(self, key: bytes, request: dict[str, Any]) -> dict[str, Any]:
        new, status = index.feedback(self.index.get(key), request["institution_id"], request["alert_id"],
                                     request["outcome"])
        if status == "recorded":
            self.published.append((self.feedback_topic, key, json.loads(json.dumps(request["record"]))))
            if request["outcome"] == "accepted":  # as the worker: the alert's lines are withdrawn
                withdrawal = index.withdrawal_event(self.index.get(key), request["alert_id"])
                if withdrawal is not None:
                    self.withdrawals.append(withdrawal["event_id"])
                    self.handle(withdrawal["patient"]["id"].encode(), withdrawal, evaluate=False)
            self.index[key] = new  # type: ignore[assignment]
        return {"feedback": {"status": status}}

    async def submit(self, key: bytes, event: dict[str, Any], budget_s: float, topic: str | None = None) -> Outcome:
        if not self.available:
            return Outcome("unavailable", error="broker unreachable")
        if topic == self.alert_index_topic:
            return Outcome("evaluated", self.check_feedback(key, json.loads(json.dumps(event))))
        decision = self.handle(key, json.loads(json.dumps(event)))
        if self.answer == "timeout":
            return Outcome("timeout")
        return Outcome("evaluated", decision)

    async def publish(self, topic: str, key: bytes | None, value: dict[str, Any], timeout_s: float = 5.0,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        if not self.available:
            raise TimeoutError("broker unreachable")
        self.published.append((topic, key, json.loads(json.dumps(value))))
        if topic == self.events_topic and key is not None:
            history = env.kind_of(env.header_map(headers), topic, "") is env.Kind.history
            self.handle(key, json.loads(json.dumps(value)), evaluate=not history)

    async def publish_many(self, topic: str, key: bytes, values: list[dict[str, Any]], timeout_s: float,
                           headers: list[tuple[str, bytes]] | None = None) -> None:
        if timeout_s <= 0:
            raise TimeoutError("budget exhausted")
        for value in values:
            await self.publish(topic, key, value, timeout_s, headers)

    def state(self, patient_id: str) -> dict[str, Any]:
        return state_codec.loads(self.states.get(patient_id.encode()))


@pytest.fixture
def fake(engine: Engine) -> InProcessEngine:
    s = load_settings({})
    return InProcessEngine(engine, s.events_topic, s.alert_index_topic, s.feedback_topic)


class App:
    """A small synchronous HTTP client for an ASGI app (httpx's ASGITransport; no lifespan)."""

    def __init__(self, app: Any, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://presettle.test",
                                         headers=self.headers) as client:
                return await client.request(method, url, **kw)

        return asyncio.run(go())

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)


@pytest.fixture
def api(fake: InProcessEngine) -> App:
    """The ingress app with ``fake`` as its engine client (no lifespan: no broker)."""
    from services.ingress.app import create_app

    # A generous budget: the fake answers at once, and a loaded test machine must not turn the
    # ingress's own work (mapping, history writes) into a budget timeout.
    app = create_app(load_settings({"PRESETTLE_BUDGET_MS": "30000"}))
    app.state.engine_client = fake
    return App(app, {"X-API-Key": "dev-key-h1"})


# -- drop-in clients: the national gateway's signed headers -------------------------------
PAASIDS = {"his-h1": ("h1-gateway-secret-0123456789", "H1"), "his-h2": ("h2-gateway-secret-0123456789", "H2")}


def signed_headers(paasid: str = "his-h1", secret: str | None = None, timestamp: int | None = None,
                   nonce: str | None = None) -> dict[str, str]:
    """Headers as HIS integrations sign calls to the national platform's gateway."""
    import hashlib
    import time
    import uuid

    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or uuid.uuid4().hex
    secret = PAASIDS[paasid][0] if secret is None else secret
    sig = hashlib.sha256(f"{ts}{secret}{nonce}{ts}".encode()).hexdigest()
    return {"x-tif-paasid": paasid, "x-tif-timestamp": ts, "x-tif-nonce": nonce, "x-tif-signature": sig}


@pytest.fixture
def gateway_app(fake: InProcessEngine) -> App:
    """The ingress app with paasids configured; the client sends no X-API-Key."""
    from services.ingress.app import create_app

    raw = ",".join(f"{p}:{s}:{i}" for p, (s, i) in PAASIDS.items())
    app = create_app(load_settings({"PRESETTLE_BUDGET_MS": "30000", "PRESETTLE_NHSA_PAASIDS": raw}))
    app.state.engine_client = fake
    return App(app, {})

"""POST /v1/events's own handler (services/ingress/native.py EventRoute) answers exactly what
FastAPI's standard handler for the same route answers — success and every error — and takes
the common case without FastAPI's dependency solving."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import orjson
import pytest
from fastapi.routing import APIRoute

from services.common.settings import load_settings
from services.contracts.decision import Decision
from services.ingress import native
from services.rules.engine import Engine
from tests.dialects.conftest import App, InProcessEngine
from tests.factories import dx, event

VALID = event(patient="PROUTE1", gender="F", diagnoses=[dx("N40")])  # R03: an alert with evidence
JSON = {"Content-Type": "application/json"}

# (name, method kwargs of App.request, headers): the common case and every way out of it.
CASES: list[tuple[str, str, dict[str, Any], dict[str, str]]] = [
    ("valid", "/v1/events", {"content": orjson.dumps(VALID)}, JSON),
    ("valid, budget", "/v1/events?budget_ms=250", {"content": orjson.dumps(VALID)}, JSON),
    ("budget zero", "/v1/events?budget_ms=0", {"content": orjson.dumps(VALID)}, JSON),
    ("budget too large", "/v1/events?budget_ms=60001", {"content": orjson.dumps(VALID)}, JSON),
    ("budget not a number", "/v1/events?budget_ms=abc", {"content": orjson.dumps(VALID)}, JSON),
    ("unknown query parameter", "/v1/events?x=1", {"content": orjson.dumps(VALID)}, JSON),
    ("charset", "/v1/events", {"content": orjson.dumps(VALID)}, {"Content-Type": "application/json; charset=utf-8"}),
    ("no content type", "/v1/events", {"content": orjson.dumps(VALID)}, {}),
    ("text content type", "/v1/events", {"content": orjson.dumps(VALID)}, {"Content-Type": "text/plain"}),
    ("no key", "/v1/events", {"content": orjson.dumps(VALID)}, {**JSON, "X-API-Key": ""}),
    ("unknown key", "/v1/events", {"content": orjson.dumps(VALID)}, {**JSON, "X-API-Key": "nope"}),
    ("unknown key, malformed JSON", "/v1/events", {"content": b'{"event_id": '}, {**JSON, "X-API-Key": "nope"}),
    ("malformed JSON", "/v1/events", {"content": b'{"event_id": "e1", '}, JSON),
    ("empty body", "/v1/events", {"content": b""}, JSON),
    ("a list", "/v1/events", {"content": b"[1, 2]"}, JSON),
    ("NaN amount", "/v1/events", {"content": orjson.dumps(VALID).replace(b'"scene":2', b'"scene":NaN')}, JSON),
    ("invalid event", "/v1/events", {"content": orjson.dumps({**VALID, "scene": 99})}, JSON),
    ("another institution", "/v1/events", {"content": orjson.dumps(VALID)}, {**JSON, "X-API-Key": "dev-key-h2"}),
]


def app_for(engine: Engine, standard: bool, monkeypatch: pytest.MonkeyPatch) -> App:
    from services.ingress.app import create_app

    if standard:  # the same route with FastAPI's own handler
        plain = APIRoute("/v1/events", native.post_event, methods=["POST"], response_model=Decision)
        monkeypatch.setattr(native.router, "routes", [plain])
    app = create_app(load_settings({"PRESETTLE_BUDGET_MS": "30000"}))
    s = load_settings({})
    app.state.engine_client = InProcessEngine(engine, s.events_topic, s.alert_index_topic, s.feedback_topic)
    return App(app, {"X-API-Key": "dev-key-h1"})


def answer(api: App, url: str, kwargs: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    r = api.request("POST", url, headers=headers, **kwargs)
    body = r.json()
    if isinstance(body, dict):
        body.pop("latency_ms", None)
    return r.status_code, body


def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths FastAPI solves dependencies for (its standard handler), from now on."""
    solved: list[str] = []
    original = fastapi.routing.solve_dependencies

    async def counting(**kwargs: Any) -> Any:
        solved.append(kwargs["request"].url.path)
        return await original(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    return solved


def test_every_answer_equals_fastapis_standard_handler(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    solved = counted(monkeypatch)
    fast = app_for(engine, standard=False, monkeypatch=monkeypatch)
    fast_answers = [answer(fast, url, kw, headers) for _, url, kw, headers in CASES]
    standard = app_for(engine, standard=True, monkeypatch=monkeypatch)
    solved.clear()
    standard_answers = [answer(standard, url, kw, headers) for _, url, kw, headers in CASES]
    assert len(solved) >= len(CASES) - 2, "the standard app takes FastAPI's handler (malformed JSON fails before)"
    for (name, *_), got, want in zip(CASES, fast_answers, standard_answers, strict=True):
        assert got == want, name
    statuses = {name: got[0] for (name, *_), got in zip(CASES, fast_answers, strict=True)}
    assert statuses["valid"] == statuses["valid, budget"] == statuses["charset"] == 200
    assert fast_answers[0][1]["alerts"], "the valid event answers its alert"
    assert statuses["budget zero"] == statuses["malformed JSON"] == statuses["invalid event"] == 422
    assert statuses["no key"] == statuses["unknown key"] == 401
    assert statuses["unknown key, malformed JSON"] == 422  # FastAPI reads the body before the key check
    assert statuses["another institution"] == 403


def test_the_common_case_skips_fastapis_dependency_solving(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    solved = counted(monkeypatch)
    api = app_for(engine, standard=False, monkeypatch=monkeypatch)
    assert answer(api, "/v1/events?budget_ms=250", {"content": orjson.dumps(VALID)}, JSON)[0] == 200
    assert solved == []
    assert answer(api, "/v1/events", {"content": b"{"}, JSON)[0] == 422
    assert solved == [], "malformed JSON fails in FastAPI's body read, before its dependencies"
    assert answer(api, "/v1/events", {"content": orjson.dumps({**VALID, "scene": 99})}, JSON)[0] == 422
    assert solved == ["/v1/events"], "an invalid event is answered by FastAPI's own handler"

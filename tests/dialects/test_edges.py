"""Validated edges on the real ingress app (no broker): body limit, dates, malformed JSON, documented codes."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from services.common.settings import load_settings
from services.ingress.limits import BodyLimitMiddleware
from tests.dialects.conftest import App, InProcessEngine, example
from tests.factories import drug, event

SIGN = "cds-hook.request.order-sign.json"
OUTPATIENT = "nhsa-analysis.request.3101-outpatient.json"


def small_limit_api(fake: InProcessEngine, limit: int) -> App:
    from services.ingress.app import create_app

    app = create_app(load_settings({"PRESETTLE_MAX_BODY_BYTES": str(limit)}))
    app.state.engine_client = fake
    return App(app, {"X-API-Key": "dev-key-h1"})


# -- body limit --------------------------------------------------------------------------
def test_default_body_limit_is_one_mib() -> None:
    assert load_settings({}).max_body_bytes == 1024 * 1024


def test_oversized_body_answers_413_with_the_error_body(api: App, fake: InProcessEngine) -> None:
    big = event(items=[drug("X", 1, 1, line_id=str(n), name="x" * 150) for n in range(500)])
    big["padding"] = "y" * (1024 * 1024)  # extra fields are ignored, so only the size is wrong
    r = api.post("/v1/events", json=big)
    assert r.status_code == 413, r.text
    assert r.json()["error"] == "payload_too_large" and r.json()["field"] == "body"
    assert "1048576" in r.json()["message"]
    assert fake.applied == [], "nothing reached the engine"
    for path in ("/nhsa/3101", "/cds-services/presettle-order-sign", "/v1/alerts/x/feedback"):
        assert api.post(path, json=big).status_code == 413, path


def test_body_limit_is_configurable(fake: InProcessEngine) -> None:
    api = small_limit_api(fake, 2048)
    ok = event()
    assert api.post("/v1/events", json=ok).status_code == 200
    ok["padding"] = "z" * 3000
    assert api.post("/v1/events", json=ok).status_code == 413


def _asgi_call(middleware: BodyLimitMiddleware, headers: list[tuple[bytes, bytes]],
               chunks: list[bytes]) -> tuple[int, int, bool]:
    """Run one request through the middleware: (status, chunks pulled from the client, app called)."""
    pulled = 0
    sent: list[dict[str, Any]] = []
    called = False

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        body = chunks[pulled - 1] if pulled <= len(chunks) else b""
        return {"type": "http.request", "body": body, "more_body": pulled < len(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal called
        called = True
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        assert body == b"".join(chunks)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware.app = app
    scope = {"type": "http", "method": "POST", "path": "/v1/events", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return sent[0]["status"], pulled, called


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    mw = BodyLimitMiddleware(None, max_bytes=1000)
    status, pulled, called = _asgi_call(mw, [(b"content-length", b"20000000")], [b"x" * 100] * 10)
    assert (status, pulled, called) == (413, 0, False)


def test_chunked_body_is_read_only_until_it_passes_the_limit() -> None:
    mw = BodyLimitMiddleware(None, max_bytes=1000)
    # No Content-Length (chunked): 100 chunks of 300 bytes; the 4th passes the limit.
    status, pulled, called = _asgi_call(mw, [(b"transfer-encoding", b"chunked")], [b"x" * 300] * 100)
    assert (status, pulled, called) == (413, 4, False)
    # Within the limit: the app reads the whole body as sent.
    status, pulled, called = _asgi_call(mw, [(b"transfer-encoding", b"chunked")], [b"x" * 300] * 3)
    assert (status, called) == (200, True)


# -- dates ---------------------------------------------------------------------------------
def test_birth_date_after_the_event_date_is_refused(api: App, fake: InProcessEngine) -> None:
    r = api.post("/v1/events", json=event(birth_date="2034-05-01"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "patient.birth_date" and "after the event date 2026-03-01" in body["message"]
    assert fake.applied == []
    # Born on the day of the event: fine (a newborn).
    assert api.post("/v1/events", json=event(birth_date="2026-03-01")).status_code == 200


def test_implausible_service_dates_are_refused_near_misses_are_alerted(api: App) -> None:
    inpatient = {"encounter_type": "inpatient", "scene": 8,
                 "admitted_at": "2026-02-20T10:00:00+08:00", "discharged_at": "2026-03-01T08:00:00+08:00"}
    inside = {**drug("X", 1, 1, line_id="1"), "started_at": "2026-02-25T09:00:00+08:00"}
    months_before = {**drug("X", 1, 1, line_id="2"), "started_at": "2025-12-19T09:00:00+08:00"}
    year_typo = {**drug("X", 1, 1, line_id="3"), "started_at": "2027-02-25T09:00:00+08:00"}
    r = api.post("/v1/events", json=event(items=[inside, months_before], **inpatient))
    assert r.status_code == 422 and r.json()["field"] == "items[1].started_at"
    assert "more than 30 days before encounter.admitted_at" in r.json()["message"]
    r = api.post("/v1/events", json=event(items=[year_typo], **inpatient))
    assert r.status_code == 422 and r.json()["field"] == "items[0].started_at"
    assert "after encounter.discharged_at" in r.json()["message"]
    before_birth = {**drug("X", 1, 1), "started_at": "1950-01-01T09:00:00+08:00"}
    r = api.post("/v1/events", json=event(items=[before_birth]))
    assert r.status_code == 422 and r.json()["field"] == "items[0].started_at"
    assert "before patient.birth_date" in r.json()["message"]
    # A charge dated the day before admission is plausible: accepted, and rule R26
    # (计费日期与住院时间不符) flags it — refusing it would hide exactly what R26 is for.
    day_before = {"line_id": "9", "code": "002103000020000", "name": "胸部CT平扫", "kind": "service",
                  "quantity": 1, "unit_price": 200, "amount": 200, "started_at": "2026-02-19T08:00:00+08:00"}
    r = api.post("/v1/events", json=event(items=[inside, day_before], **inpatient))
    assert r.status_code == 200, r.text
    assert "R26" in [a["rule_id"] for a in r.json()["alerts"]]


def test_cds_birth_date_after_the_event_names_the_field(api: App) -> None:
    body = copy.deepcopy(example(SIGN))
    body["prefetch"]["patient"]["birthDate"] = "2099-01-01"
    r = api.post("/cds-services/presettle-order-sign", json=body)
    assert r.status_code == 422, r.text
    assert "birth_date" in r.json()["message"]


# -- malformed JSON: 422, as the README says -------------------------------------------------
def test_malformed_json_answers_422_naming_the_body(api: App) -> None:
    r = api.post("/v1/events", content=b'{"event_id": "e1", ', headers={"Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["error"] == "invalid_request" and r.json()["field"] == "body"
    assert "not valid JSON" in r.json()["message"]


NOT_UTF8 = {"content": b'{"event_id": "\xff\x15"}', "headers": {"Content-Type": "application/json"}}


@pytest.mark.parametrize("path", ["/v1/events", "/cds-services/presettle-order-sign", "/v1/alerts/nope/feedback"])
def test_a_body_that_is_not_utf8_answers_422_naming_the_body(api: App, path: str) -> None:
    """FastAPI answers such a body with a bare 400 "There was an error parsing the body"."""
    r = api.post(path, **NOT_UTF8)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request" and r.json()["field"] == "body"
    assert r.json()["message"] == "body: the request body is not valid JSON (it is not UTF-8 text)"


def test_a_body_that_is_not_utf8_gets_the_national_envelope_on_nhsa_routes(api: App) -> None:
    r = api.post("/nhsa/3101", **NOT_UTF8)
    assert r.status_code == 200 and r.json()["infcode"] == -1
    assert r.json()["err_msg"] == "body: 请求报文不是合法的 JSON (the request body is not valid JSON (it is not UTF-8 text))"


def test_readme_states_the_status_codes_the_native_api_answers() -> None:
    from tests.ops.helpers import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`422` invalid body or malformed JSON" in readme
    assert "`413`" in readme and "PRESETTLE_MAX_BODY_BYTES" in readme


# -- every status code we answer is in the OpenAPI document ----------------------------------
def _observed(api: App) -> set[tuple[str, str, int]]:
    """(path template, method, status) for a battery of good and bad requests on every body route."""
    big = {"padding": "x" * (1024 * 1024 + 1)}
    nhsa = example(OUTPATIENT)
    cases: list[tuple[str, str, str, dict[str, Any]]] = [
        ("/v1/events", "/v1/events", "post", {"json": event()}),
        ("/v1/events", "/v1/events", "post", {"json": {"event_id": 1}}),
        ("/v1/events", "/v1/events", "post", {"json": big}),
        ("/nhsa/3101", "/nhsa/3101", "post", {"json": nhsa}),
        ("/nhsa/3101", "/nhsa/3101", "post", {"json": big}),
        ("/cds-services/{service_id}", "/cds-services/presettle-order-sign", "post", {"json": example(SIGN)}),
        ("/cds-services/{service_id}", "/cds-services/presettle-order-sign", "post", {"json": {"x": 1}}),
        ("/cds-services/{service_id}", "/cds-services/presettle-order-sign", "post", {"json": big}),
        ("/v1/alerts/{alert_id}/feedback", "/v1/alerts/nope/feedback", "post", {"json": {"outcome": "accepted"}}),
        ("/v1/alerts/{alert_id}/feedback", "/v1/alerts/nope/feedback", "post", {"json": big}),
        ("/v1/patient-status", "/v1/patient-status", "post", {"json": big}),
        ("/v1/events", "/v1/events", "post", NOT_UTF8),
        ("/nhsa/3101", "/nhsa/3101", "post", NOT_UTF8),
        ("/cds-services/{service_id}", "/cds-services/presettle-order-sign", "post", NOT_UTF8),
        # no key, another institution's key, an alert never issued
        ("/v1/events", "/v1/events", "post", {"json": event(), "headers": {"X-API-Key": ""}}),
        ("/v1/events", "/v1/events", "post", {"json": event(), "headers": {"X-API-Key": "dev-key-h2"}}),
        ("/v1/alerts/{alert_id}/feedback", "/v1/alerts/d-0a1b2c3d4e5f60718293.R19.1/feedback", "post",
         {"json": {"outcome": "accepted"}}),
        ("/v1/alerts/{alert_id}/feedback", "/v1/alerts/d-0a1b2c3d4e5f60718293.R19.1/feedback", "post",
         {"json": {"outcome": "accepted"}, "headers": {"X-API-Key": ""}}),
        ("/cds-services/{service_id}", "/cds-services/presettle-order-sign", "post",
         {"json": example(SIGN), "headers": {"X-API-Key": ""}}),
        ("/nhsa/3101", "/nhsa/3101", "post", {"json": nhsa, "headers": {"X-API-Key": ""}}),
        ("/nhsa/3101", "/nhsa/3101", "post", {"json": nhsa, "headers": {"X-API-Key": "dev-key-h2"}}),
    ]
    seen = set()
    for template, path, method, kw in cases:
        r = api.request(method.upper(), path, **kw)
        assert r.status_code < 500, (path, r.status_code, r.text)
        seen.add((template, method, r.status_code))
    return seen


def test_every_status_code_answered_here_is_documented_in_openapi(api: App) -> None:
    spec = api.get("/openapi.json").json()
    observed = _observed(api)
    assert any(code == 413 for *_, code in observed) and any(code == 422 for *_, code in observed)
    assert {401, 403, 404} <= {code for *_, code in observed}
    missing = sorted((t, m, c) for t, m, c in observed if str(c) not in spec["paths"][t][m]["responses"])
    assert not missing, f"answered but not in openapi.json: {missing}"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/alerts/{alert_id}/feedback", "/nhsa/3101",
                                  "/cds-services/{service_id}"])
def test_413_documented_on_body_routes(api: App, path: str) -> None:
    spec = api.get("/openapi.json").json()
    answer = spec["paths"][path]["post"]["responses"]["413"]
    assert answer["content"]["application/json"]["example"]["error"] == "payload_too_large"

"""The live page against a running stack: audit topic → ingress aggregation → JSON and SSE."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from services.common.privacy import mask
from services.stack import Stack
from tests.factories import uid
from tests.ops.helpers import post_ok, r03_event, r19_events, wait_for

pytestmark = pytest.mark.e2e


ADMIN = {"X-API-Key": "dev-admin-key"}


def data(client: httpx.Client, headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = client.get("/dashboard/data", headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


def recent_for(snapshot: dict[str, Any], decision_id: str) -> list[dict[str, Any]]:
    return [a for a in snapshot["recent"] if a["decision_id"] == decision_id]


def test_page_is_served_without_a_key_but_its_data_is_not(stack: Stack) -> None:
    r = httpx.get(stack.url + "/dashboard", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "实时监管大屏" in r.text and "live" in r.text.lower() and 'id="login-key"' in r.text
    for path in ("/dashboard/data", "/dashboard/stream"):
        r = httpx.get(stack.url + path, timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", path
        r = httpx.get(stack.url + path, timeout=10, headers={"X-API-Key": "not-a-key-at-all"})
        assert r.status_code == 401, path
    forged = "v1.Kg.9999999999.0000000000000000." + "0" * 64  # scope "*" with a made-up signature
    r = httpx.get(stack.url + "/dashboard/data", timeout=10, cookies={"presettle_board": forged})
    assert r.status_code == 401


def test_an_institution_sees_only_its_own_institution_and_admin_sees_all(stack: Stack) -> None:
    h1 = {"X-API-Key": "dev-key-h1"}
    h2 = {"X-API-Key": "dev-key-h2"}
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        assert wait_for(lambda: data(c, h1)["feed_ready"], what="the audit feed")
        first = post_ok(c, r03_event(uid("PH1")), headers=h1)
        second = post_ok(c, r03_event(uid("PH2"), institution="H2"), headers=h2)
        admin = wait_for(lambda: (s := data(c, ADMIN)) and recent_for(s, second["decision_id"])
                         and recent_for(s, first["decision_id"]) and s, what="both alerts on the admin board")
        assert admin["scope"] == "*"
        mine = wait_for(lambda: (s := data(c, h1)) and recent_for(s, first["decision_id"]) and s,
                        what="H1's alert on H1's board")
        assert mine["scope"] == "H1"
        assert {a["institution_id"] for a in mine["recent"]} == {"H1"}
        assert {i["institution_id"] for i in mine["top_institutions"]} == {"H1"}
        assert mine["latency"]["count"] is None and mine["latency"]["engine_status"] == {}
        theirs = data(c, h2)
        assert recent_for(theirs, second["decision_id"]) and not recent_for(theirs, first["decision_id"])
        assert {a["institution_id"] for a in theirs["recent"]} == {"H2"}
        # The browser's way: the key once for a session cookie, then the cookie alone.
        r = c.post("/dashboard/session", headers=h2)
        assert r.status_code == 200 and r.json() == {"scope": "H2"}
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/dashboard" in set_cookie
        assert "dev-key-h2" not in r.headers["set-cookie"]
        with httpx.Client(base_url=stack.url, timeout=30, cookies=r.cookies) as browser:
            via_cookie = browser.get("/dashboard/data").json()
        assert via_cookie["scope"] == "H2" and not recent_for(via_cookie, first["decision_id"])
        assert c.post("/dashboard/session", headers={"X-API-Key": "nope-nope-nope"}).status_code == 401


def test_decisions_show_up_aggregated_and_masked(client: httpx.Client) -> None:
    assert wait_for(lambda: data(client)["feed_ready"], what="the audit feed")
    before = data(client)
    assert before["scope"] == "H1"
    patient = uid("PSECRET")
    answer = post_ok(client, r03_event(patient))
    r19_first, r19_second = r19_events()
    post_ok(client, r19_first)
    second = post_ok(client, r19_second)
    assert "R19" in [a["rule_id"] for a in second["alerts"]]

    snap = wait_for(lambda: (s := data(client)) and recent_for(s, second["decision_id"]) and s,
                    what="the R19 alert on the page")
    mine = recent_for(snap, answer["decision_id"])
    assert [a["rule_id"] for a in mine] == ["R03"]
    assert mine[0]["patient"] == mask(patient) and mine[0]["institution_id"] == "H1"
    assert mine[0]["name_zh"] and mine[0]["name_en"] and mine[0]["severity"] == "C"
    assert snap["totals"]["decisions"] >= before["totals"]["decisions"] + 3
    assert snap["totals"]["alerts"] >= before["totals"]["alerts"] + 2
    rules = {r["rule_id"]: r["alerts"] for r in snap["top_rules"]}
    old_rules = {r["rule_id"]: r["alerts"] for r in before["top_rules"]}
    assert rules["R03"] >= old_rules.get("R03", 0) + 1 and rules["R19"] >= old_rules.get("R19", 0) + 1
    assert any(i["institution_id"] == "H1" for i in snap["top_institutions"])
    latency = wait_for(lambda: (lat := data(client, ADMIN)["latency"])["count"] >= 3 and lat, timeout=5,
                       what="latency sampled (once a second)")
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert patient not in json.dumps(snap, ensure_ascii=False)


def test_stream_pushes_a_snapshot_when_an_alert_arrives(stack: Stack, client: httpx.Client) -> None:
    assert wait_for(lambda: data(client)["feed_ready"], what="the audit feed")
    patient = uid("PSTREAM")
    seen: list[dict[str, Any]] = []
    session = client.post("/dashboard/session")  # as the page does: the key once, then the cookie
    assert session.status_code == 200
    with httpx.Client(base_url=stack.url, timeout=httpx.Timeout(15.0), cookies=session.cookies) as sse:
        with sse.stream("GET", "/dashboard/stream") as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.iter_lines()
            answer: dict[str, Any] | None = None
            event_name = ""
            for line in lines:
                if line.startswith("event:"):
                    event_name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event_name == "snapshot":
                    snap = json.loads(line[5:])
                    seen.append(snap)
                    assert patient not in line
                    if answer is None:  # the first snapshot arrives at once; now make news
                        answer = post_ok(client, r03_event(patient))
                    elif recent_for(snap, answer["decision_id"]):
                        break
                if len(seen) > 40:
                    pytest.fail("no snapshot with the new alert within 40 pushes")
    assert answer is not None
    assert seen[-1]["version"] > seen[0]["version"]
    assert recent_for(seen[-1], answer["decision_id"])[0]["patient"] == mask(patient)


def test_dashboard_metrics_are_exported(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    assert "presettle_dashboard_feed_up 1.0" in text
    assert "presettle_dashboard_decisions_total" in text


def test_an_open_stream_does_not_hold_a_stopping_ingress() -> None:
    """uvicorn waits for open responses before it stops; the live page's streams must end."""
    import signal
    import subprocess
    import threading

    from services.common.settings import load_settings
    from tests.conftest import ARTIFACTS, stack_env

    env = stack_env()
    partial = Stack(load_settings(env), env=env, log_dir=ARTIFACTS / "logs" / "dashboard-shutdown")
    try:
        partial.start_broker()
        partial.start_ingress()  # no worker: the live page needs only the broker
        wait_for(lambda: _ready(partial.url), timeout=30, what="the ingress and its audit feed")
        opened = threading.Event()

        def hold() -> None:
            try:
                with httpx.stream("GET", partial.url + "/dashboard/stream", timeout=30, headers=ADMIN) as r:
                    for line in r.iter_lines():
                        if line.startswith("event: snapshot"):
                            opened.set()
            except httpx.HTTPError:
                pass

        reader = threading.Thread(target=hold, daemon=True)
        reader.start()
        assert opened.wait(10), "no snapshot on the stream"
        ingress = partial.ingress
        assert ingress is not None
        ingress.send_signal(signal.SIGTERM)
        try:
            ingress.wait(8)  # a liveness bound (the stream must not hold the shutdown), not a speed target
        except subprocess.TimeoutExpired:
            pytest.fail("the ingress did not stop with a live page open")
        reader.join(5)
        assert not reader.is_alive(), "the stream ended"
    finally:
        partial.stop()


def _ready(url: str) -> bool:
    try:
        return bool(httpx.get(url + "/dashboard/data", timeout=2, headers=ADMIN).json()["feed_ready"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False

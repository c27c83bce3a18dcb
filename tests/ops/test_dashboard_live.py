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


def data(client: httpx.Client) -> dict[str, Any]:
    r = client.get("/dashboard/data")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return r.json()


def recent_for(snapshot: dict[str, Any], decision_id: str) -> list[dict[str, Any]]:
    return [a for a in snapshot["recent"] if a["decision_id"] == decision_id]


def test_page_is_served_without_a_key(stack: Stack) -> None:
    r = httpx.get(stack.url + "/dashboard", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "实时监管大屏" in r.text and "live" in r.text.lower()


def test_decisions_show_up_aggregated_and_masked(client: httpx.Client) -> None:
    assert wait_for(lambda: data(client)["feed_ready"], what="the audit feed")
    before = data(client)
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
    latency = wait_for(lambda: (lat := data(client)["latency"])["count"] >= 3 and lat, timeout=5,
                       what="latency sampled (once a second)")
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    assert patient not in json.dumps(snap, ensure_ascii=False)


def test_stream_pushes_a_snapshot_when_an_alert_arrives(stack: Stack, client: httpx.Client) -> None:
    assert wait_for(lambda: data(client)["feed_ready"], what="the audit feed")
    patient = uid("PSTREAM")
    seen: list[dict[str, Any]] = []
    with httpx.Client(base_url=stack.url, timeout=httpx.Timeout(15.0)) as sse:
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
                with httpx.stream("GET", partial.url + "/dashboard/stream", timeout=30) as r:
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
        return bool(httpx.get(url + "/dashboard/data", timeout=2).json()["feed_ready"])
    except (httpx.HTTPError, ValueError, KeyError):
        return False

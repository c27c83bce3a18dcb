"""A real Prometheus (Debian's package, installed by tests/setup_system.py) scrapes the running
ingress and worker on loopback; the test reads the key series back over Prometheus' HTTP API,
evaluates every Grafana panel query and loads the alert rules."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from services.common.broker import free_port
from services.stack import Stack
from tests.factories import uid
from tests.ops.helpers import DEPLOY, post_ok, r03_event, stop_process, wait_for

pytestmark = pytest.mark.e2e

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("Debian package 'prometheus' is not installed (tests/setup_system.py could not install it)")
    ingress = urlsplit(stack.url).netloc
    worker = f"127.0.0.1:{stack.settings.worker_metrics_port}"
    sink = f"127.0.0.1:{stack.settings.sink_metrics_port}"
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="presettle-prom-"))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(DEPLOY / "prometheus" / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "presettle-ingress", "static_configs": [{"targets": [ingress]}]},
            {"job_name": "presettle-worker", "static_configs": [{"targets": [worker]}]},
            {"job_name": "presettle-sink", "static_configs": [{"targets": [sink]}]},
        ],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", "--storage.tsdb.retention.time=1h"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {proc.returncode}; see .artifacts/prometheus.log")
            try:
                return httpx.get(base + "/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=30, what="prometheus /-/ready")
        yield base
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


def query(base: str, expr: str) -> dict[str, Any]:
    r = httpx.get(base + "/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]


def series(base: str, expr: str) -> list[dict[str, Any]]:
    return query(base, expr)["result"]


def test_prometheus_scrapes_ingress_worker_and_sink(prometheus: str, client: httpx.Client) -> None:
    patient = uid("PPROM")
    for _ in range(3):
        post_ok(client, r03_event(patient))  # same patient, new event ids: three decisions
    wait_for(lambda: {s["metric"]["job"]: s["value"][1] for s in series(prometheus, "up")}
             == {"presettle-ingress": "1", "presettle-worker": "1", "presettle-sink": "1"}, timeout=30,
             what="every target up")

    evaluated = wait_for(lambda: series(prometheus, 'presettle_engine_status_total{engine_status="evaluated"}'),
                         timeout=20, what="presettle_engine_status_total")
    assert float(evaluated[0]["value"][1]) >= 3
    assert evaluated[0]["metric"]["job"] == "presettle-ingress"
    events = series(prometheus, "sum(presettle_worker_events_total)")
    assert events and float(events[0]["value"][1]) >= 3
    r03 = series(prometheus, 'presettle_alerts_total{rule_id="R03",severity="C"}')
    assert r03 and float(r03[0]["value"][1]) >= 3 and r03[0]["metric"]["job"] == "presettle-worker"
    for name in ("presettle_decision_latency_seconds_bucket", "presettle_http_request_duration_seconds_bucket",
                 "presettle_rule_evaluation_seconds_bucket", "presettle_patient_state_bytes_bucket",
                 "presettle_worker_consumer_lag", "presettle_reply_backlog", "presettle_broker_up"):
        assert series(prometheus, name), f"{name} was not scraped"
    routes = {s["metric"]["route"] for s in series(prometheus, "presettle_http_requests_total")}
    assert "/v1/events" in routes

    # No label value anywhere carries the patient id.
    everything = series(prometheus, '{__name__=~"presettle_.+"}')
    assert everything
    assert not [s for s in everything if any(patient in v for v in s["metric"].values())]


def test_grafana_queries_evaluate_on_real_prometheus(prometheus: str, client: httpx.Client) -> None:
    board = json.loads((DEPLOY / "grafana/dashboards/presettle.json").read_text())
    wait_for(lambda: series(prometheus, "presettle_decision_latency_seconds_count"), timeout=20, what="a scrape")
    for _ in range(10):  # traffic spread over several 1 s scrapes, so rate() sees increases
        post_ok(client, r03_event())
        time.sleep(0.3)
    time.sleep(2.5)
    empty = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m")
            result = query(prometheus, expr)  # a syntax or type error fails here
            if not result["result"]:
                empty.append(panel["title"])
    # Every latency and throughput panel has data after a few requests (feedback may be empty).
    for title in empty:
        assert "Feedback" in title or "Override" in title or "failures" in title.lower() or "大屏" in title, (
            f"panel without data: {title}")
    p99 = series(prometheus,
                 "histogram_quantile(0.99, sum by (le) (rate(presettle_decision_latency_seconds_bucket[1m])))")
    assert p99 and math.isfinite(float(p99[0]["value"][1])) and float(p99[0]["value"][1]) > 0, p99


def test_alert_rules_load_and_evaluate(prometheus: str) -> None:
    def loaded() -> list[dict[str, Any]]:
        body = httpx.get(prometheus + "/api/v1/rules", timeout=10).json()
        rules = [r for g in body["data"]["groups"] for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("2") and
                                      not r["lastEvaluation"].startswith("0001") for r in rules) else []

    rules = wait_for(loaded, timeout=20, what="alert rules evaluated")
    assert len(rules) >= 8
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    firing = [r["name"] for r in rules if r["state"] == "firing"]
    assert "PreSettleBrokerUnreachable" not in firing and "PreSettleIngressDown" not in firing

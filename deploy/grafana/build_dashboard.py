"""Builds deploy/grafana/dashboards/presettle.json (the Grafana board) from the panel list below.

    python deploy/grafana/build_dashboard.py          # rewrites the JSON next to this file

Edit the panels here, not in the JSON: tests/ops/test_deploy_static.py checks that the JSON is
what this script produces, and that every PromQL expression names metrics the code defines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "presettle.json"


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid = 0
    y = 0
    DS = {"type": "prometheus", "uid": "${datasource}"}
    RI = "$__rate_interval"
    API = 'route!~"/metrics|/healthz|/dashboard.*|/docs.*|/openapi.json"'

    def row(title: str) -> None:
        nonlocal pid, y
        pid += 1
        panels.append({"type": "row", "id": pid, "title": title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        y += 1

    def panel(kind: str, title: str, targets: list[tuple[str, str]], w: int, h: int, x: int,
              unit: str = "short", desc: str = "", extra: dict[str, Any] | None = None) -> None:
        nonlocal pid
        pid += 1
        p = {"type": kind, "id": pid, "title": title, "description": desc, "datasource": DS,
             "gridPos": {"h": h, "w": w, "x": x, "y": y},
             "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
             "options": {},
             "targets": [{"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": legend,
                          **({"instant": True} if kind in ("stat", "bargauge") else {})}
                         for i, (e, legend) in enumerate(targets)]}
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
            p["fieldConfig"]["defaults"]["custom"] = {"lineWidth": 1, "fillOpacity": 10}
        if kind == "stat":
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        if extra:
            for k, v in extra.items():
                if k == "thresholds":
                    p["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolute", "steps": v}
                    p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
                else:
                    p[k] = v
        panels.append(p)

    def steps(*pairs: Any) -> list[dict[str, Any]]:
        out = [{"color": pairs[0], "value": None}]
        for v, c in zip(pairs[1::2], pairs[2::2], strict=True):
            out.append({"color": c, "value": v})
        return out

    row("概览 Overview")
    panel("stat", "请求速率 Requests/s", [(f'sum(rate(presettle_http_requests_total{{{API}}}[1m]))', "req/s")], 4, 4, 0, "reqps",
          "HIS calls per second over every API route (native, NHSA, CDS Hooks).")
    panel("stat", "决策时延 p99 Decision latency", [("histogram_quantile(0.99, sum by (le) (rate(presettle_decision_latency_seconds_bucket[5m])))", "p99")], 4, 4, 4, "s",
          "End-to-end p99 seen by the ingress (produce → worker → reply) over 5 minutes.",
          {"thresholds": steps("green", 0.2, "orange", 0.25, "red")})
    panel("stat", "超时率 Timeout ratio", [("sum(rate(presettle_budget_timeouts_total[5m])) / clamp_min(sum(rate(presettle_engine_status_total[5m])), 1e-9)", "timeouts")], 4, 4, 8, "percentunit",
          "Share of requests answered engine_status=timeout (no alerts in the answer).",
          {"thresholds": steps("green", 0.001, "orange", 0.01, "red")})
    panel("stat", "预警率 Alerts per event", [("sum(rate(presettle_alerts_total[5m])) / clamp_min(sum(rate(presettle_worker_events_total[5m])), 1e-9)", "alerts/event")], 4, 4, 12, "percentunit",
          "Alerts raised per decided event over 5 minutes.")
    panel("stat", "最大消费滞后 Max consumer lag", [("max(presettle_worker_consumer_lag)", "records")], 4, 4, 16, "short",
          "Largest per-partition lag of the workers, in records.",
          {"thresholds": steps("green", 20, "orange", 100, "red")})
    panel("stat", "Kafka 可达 Broker reachable", [("min(presettle_broker_up)", "up")], 4, 4, 20, "short",
          "0 when any ingress cannot reach the Kafka bootstrap servers (answers are 'unavailable').",
          {"thresholds": steps("red", 1, "green")})
    y += 4

    row("时延 Latency")
    panel("timeseries", "决策时延分位 Decision latency percentiles", [
        (f"histogram_quantile(0.50, sum by (le) (rate(presettle_decision_latency_seconds_bucket[{RI}])))", "p50"),
        (f"histogram_quantile(0.95, sum by (le) (rate(presettle_decision_latency_seconds_bucket[{RI}])))", "p95"),
        (f"histogram_quantile(0.99, sum by (le) (rate(presettle_decision_latency_seconds_bucket[{RI}])))", "p99"),
    ], 12, 8, 0, "s", "Produce → worker → reply, measured by the ingress (buckets 1 ms – 2.5 s).")
    panel("timeseries", "HTTP 时延 p99（按路由）HTTP latency p99 by route", [
        (f"histogram_quantile(0.99, sum by (le, route) (rate(presettle_http_request_duration_seconds_bucket{{{API}}}[{RI}])))", "{{route}}"),
    ], 12, 8, 12, "s", "Whole request time per route template, including validation and serialisation.")
    y += 8
    panel("timeseries", "Worker 排队与规则计算 Worker queue and rule evaluation time", [
        (f"histogram_quantile(0.99, sum by (le) (rate(presettle_worker_queue_seconds_bucket[{RI}])))", "queue p99"),
        (f"histogram_quantile(0.50, sum by (le) (rate(presettle_rule_evaluation_seconds_bucket[{RI}])))", "rules p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate(presettle_rule_evaluation_seconds_bucket[{RI}])))", "rules p99"),
    ], 12, 7, 0, "s", "Queue: ingress produce → worker starts on the event (broker hop + backlog). Rules: engine time per event (evaluate + apply state).")
    panel("timeseries", "患者状态大小 Per-patient state size", [
        (f"histogram_quantile(0.50, sum by (le) (rate(presettle_patient_state_bytes_bucket[{RI}])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate(presettle_patient_state_bytes_bucket[{RI}])))", "p99"),
    ], 12, 7, 12, "bytes", "Serialized per-patient state after each update (drives changelog volume and recovery time).")
    y += 7

    row("吞吐 Throughput")
    panel("timeseries", "请求（按路由与状态）Requests by route and status", [
        (f"sum by (route, status) (rate(presettle_http_requests_total{{{API}}}[{RI}]))", "{{route}} {{status}}"),
    ], 8, 8, 0, "reqps")
    panel("timeseries", "事件（按场景）Events per scene", [
        (f"sum by (scene) (rate(presettle_worker_events_total[{RI}]))", "worker scene {{scene}}"),
        (f"sum by (scene) (rate(presettle_ingress_events_total[{RI}]))", "ingress scene {{scene}}"),
    ], 8, 8, 8, "ops", "trig_scen 1 门诊挂号 … 10 购药划卡.")
    panel("timeseries", "引擎状态与超时 engine_status and timeouts", [
        (f"sum by (engine_status) (rate(presettle_engine_status_total[{RI}]))", "{{engine_status}}"),
        (f"sum(rate(presettle_budget_timeouts_total[{RI}]))", "budget timeouts"),
        (f"sum(rate(presettle_produce_failures_total[{RI}]))", "produce failures"),
    ], 8, 8, 16, "ops", "evaluated: complete answers; timeout: budget missed; unavailable: broker or engine down; produce failures: events the broker did not accept.")
    y += 8

    row("规则 Rules")
    panel("timeseries", "预警（按规则）Alerts by rule (per minute)", [
        (f"sum by (rule_id) (rate(presettle_alerts_total[{RI}])) * 60", "{{rule_id}}"),
    ], 12, 8, 0, "short", "Alerts raised per minute, per rule id.")
    panel("timeseries", "预警（按级别）Alerts by severity (per minute)", [
        (f"sum by (severity) (rate(presettle_alerts_total[{RI}])) * 60", "{{severity}}"),
    ], 12, 8, 12, "short", "C definite (明确违规), W suspicious (可疑), I info.")
    y += 8
    panel("timeseries", "医生忽略率（按规则）Override rate by rule", [
        ('sum by (rule_id) (increase(presettle_feedback_total{outcome="overridden"}[1h])) / clamp_min(sum by (rule_id) (increase(presettle_feedback_total[1h])), 1e-9)', "{{rule_id}}"),
    ], 12, 8, 0, "percentunit", "Share of doctor feedback that continued despite the alert (3103 dspo_way=1), per rule, over 1 hour.")
    panel("timeseries", "医生反馈 Feedback by rule and outcome", [
        (f"sum by (rule_id, outcome) (rate(presettle_feedback_total[{RI}])) * 60", "{{rule_id}} {{outcome}}"),
    ], 12, 8, 12, "short", "Feedback per minute, per rule and outcome.")
    y += 8

    row("Kafka 与状态 Kafka and state")
    panel("timeseries", "消费滞后（按分区）Worker consumer lag per partition", [
        ("max by (topic, partition) (presettle_worker_consumer_lag)", "{{topic}}[{{partition}}]"),
    ], 12, 8, 0, "short", "Records behind the high watermark, computed in each worker every 2 s.")
    panel("timeseries", "回复积压与等待 Reply backlog and pending", [
        ("sum by (instance) (presettle_reply_backlog)", "backlog {{instance}}"),
        ("sum by (instance) (presettle_pending_requests)", "pending {{instance}}"),
    ], 12, 8, 12, "short", "Unread records on each ingress's reply topic, and requests waiting for a worker.")
    y += 8
    panel("timeseries", "处理失败、重复与历史 Worker failures, retries and history", [
        (f"sum by (error) (rate(presettle_worker_failures_total[{RI}]))", "failure {{error}}"),
        (f"sum(rate(presettle_worker_duplicate_events_total[{RI}]))", "retries answered from the record"),
        (f"sum(rate(presettle_patient_status_updates_total[{RI}]))", "status updates"),
        (f"sum by (outcome) (rate(presettle_worker_history_events_total[{RI}]))", "history {{outcome}}"),
    ], 12, 7, 0, "ops")
    panel("timeseries", "大屏 Live page", [
        ("sum(presettle_dashboard_clients)", "open /dashboard streams"),
        (f"sum(rate(presettle_dashboard_decisions_total[{RI}]))", "decisions read/s"),
        ("min(presettle_dashboard_feed_up)", "feed up"),
    ], 12, 7, 12, "short", "Connections to the live page and its audit-topic feed.")
    y += 7

    row("决策日志 Decision log")
    panel("timeseries", "写入滞后 Sink lag", [
        ("max(presettle_sink_lag_seconds)", "seconds behind (newest stored)"),
        ("sum by (kind) (presettle_sink_lag_records)", "records waiting {{kind}}"),
    ], 12, 7, 0, "short", "How far the decision log is behind the topics (docs/decisionlog.md).")
    panel("timeseries", "写入记录 Records stored", [
        (f"sum by (kind, result) (rate(presettle_sink_records_total[{RI}]))", "{{kind}} {{result}}"),
        (f"sum(rate(presettle_sink_cases_opened_total[{RI}]))", "cases opened"),
    ], 12, 7, 12, "ops", "Records the sink read per second by kind and result; review cases it opened.")
    y += 7

    dash = {
        "title": "PreSettle 医保基金事前提醒",
        "uid": "presettle-ops",
        "description": "PreSettle operations: latency, throughput, timeouts, alerts and overrides by rule, Kafka lag.",
        "tags": ["presettle"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }
    return dash


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")

"""The live page's in-memory aggregation: bounded, masked, windowed (no broker needed)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from services.ingress import dashboard
from services.ingress.dashboard import Board, histogram_quantile


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def decision(i: int, *, patient: str = "330102198501011234", institution: str = "H1",
             rules: tuple[str, ...] = ("R03",), replayed: bool = False) -> dict[str, Any]:
    return {
        "decision_id": f"d-{i}", "event_id": f"e-{i}", "institution_id": institution, "patient_id": patient,
        "scene": 2, "occurred_at": "2026-03-01T09:00:00+08:00", "engine_status": "evaluated",
        "replayed": replayed, "engine_ms": 0.4, "decided_at": "2026-03-01T01:00:00+00:00", "worker": "worker-0",
        "alerts": [{"alert_id": f"d-{i}.{r}.1", "rule_id": r, "name_zh": f"规则{r}", "name_en": f"Rule {r}",
                    "severity": "C" if r == "R03" else "W", "indicator": "critical",
                    "message_zh": f"患者{patient}的诊断与性别不符"} for r in rules],
    }


def test_counts_top_lists_and_masked_recent_alerts() -> None:
    board = Board(clock=Clock())
    board.add(decision(1, rules=("R03",)))
    board.add(decision(2, rules=("R03", "R19"), institution="H2"))
    board.add(decision(3, rules=()))
    board.add(decision(4, rules=("R19",), replayed=True))  # retries are not new decisions
    snap = board.snapshot()
    assert snap["totals"]["decisions"] == 3 and snap["totals"]["alerts"] == 3
    assert snap["totals"]["alerted_decisions"] == 2 and snap["totals"]["alert_rate"] == round(2 / 3, 4)
    assert [(r["rule_id"], r["alerts"]) for r in snap["top_rules"]] == [("R03", 2), ("R19", 1)]
    assert snap["top_rules"][0]["name_zh"] == "规则R03" and snap["top_rules"][0]["name_en"] == "Rule R03"
    assert {i["institution_id"]: (i["alerts"], i["decisions"]) for i in snap["top_institutions"]} == {
        "H1": (1, 2), "H2": (2, 1)}
    assert len(snap["recent"]) == 3 and snap["recent"][0]["rule_id"] in {"R03", "R19"}
    assert snap["recent"][0]["patient"] == "33**************34"
    text = orjson.dumps(snap).decode()
    assert "330102198501011234" not in text, "no patient id in clear anywhere in the snapshot"
    assert "33**************34" in snap["recent"][0]["message_zh"]
    series = {s["rule_id"]: s["counts"] for s in snap["per_minute"]["series"]}
    assert series["R03"][-1] == 2 and len(series["R03"]) == dashboard.WINDOW_MINUTES


def test_window_expires_minutes_older_than_an_hour() -> None:
    clock = Clock()
    board = Board(clock=clock)
    board.add(decision(1))
    clock.t += 30 * 60
    board.add(decision(2, rules=("R19",)))
    snap = board.snapshot()
    assert snap["totals"]["alerts"] == 2
    assert sum(snap["per_minute"]["series"][0]["counts"]) == 1
    clock.t += 31 * 60  # the first minute is now out of the window
    snap = board.snapshot()
    assert snap["totals"]["alerts"] == 1 and [r["rule_id"] for r in snap["top_rules"]] == ["R19"]
    assert snap["totals"]["alerts_since_start"] == 2
    assert len(board.minutes) == 1


def test_memory_is_bounded_whatever_the_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard, "MAX_KEYS", 5)
    clock = Clock()
    board = Board(clock=clock)
    for i in range(3000):
        clock.t += 3  # 2.5 hours of traffic
        board.add(decision(i, institution=f"H{i % 50}", patient=f"P{i:08d}", rules=(f"R{i % 40:02d}",)))
    assert len(board.recent) == dashboard.RECENT
    assert len(board.minutes) <= dashboard.WINDOW_MINUTES
    assert all(len(m.inst_alerts) <= 6 and len(m.inst_decisions) <= 6 for m in board.minutes)
    snap = board.snapshot()
    assert len(snap["top_rules"]) == dashboard.TOP_N and len(snap["top_institutions"]) <= dashboard.TOP_N
    assert len(snap["per_minute"]["series"]) == dashboard.CHART_RULES + 1  # top rules + "other"
    assert any(i["institution_id"] == dashboard.OTHER for i in snap["top_institutions"])
    assert not re.search(r"P\d{8}", orjson.dumps(snap).decode())


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = [0.001, 0.005, 0.01, float("inf")]
    assert histogram_quantile(0.5, bounds, [0, 0, 0, 0]) is None
    # 10 observations: 2 ≤ 1 ms, 8 in (1 ms, 5 ms]
    assert histogram_quantile(0.5, bounds, [2, 10, 10, 10]) == pytest.approx(0.001 + 0.004 * 3 / 8)
    assert histogram_quantile(0.99, bounds, [0, 0, 5, 10]) == 0.01  # +Inf bucket → highest finite bound


def test_latency_percentiles_come_from_the_ingress_histogram() -> None:
    from services.ingress import metrics

    board = Board(clock=Clock())
    board.sample_latency()
    for _ in range(90):
        metrics.DECISION_LATENCY.observe(0.004)
    for _ in range(10):
        metrics.DECISION_LATENCY.observe(0.2)
    board.sample_latency()
    latency = board.snapshot()["latency"]
    assert latency["count"] == 100
    assert 2.5 <= latency["p50_ms"] <= 5 and 150 <= latency["p99_ms"] <= 200


def test_page_is_self_contained_bilingual_and_uses_relative_urls() -> None:
    html = dashboard.PAGE.read_text(encoding="utf-8")
    external = [u for u in re.findall(r"https?://[^\s\"')]+", html) if u != "http://www.w3.org/2000/svg"]
    assert not external, f"no CDN or external resource: {external}"
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html), "inline JS and CSS only"
    assert "@font-face" not in html and "@import" not in html
    for zh, en in (("每分钟预警", "Alerts per minute"), ("最新预警", "Recent alerts"), ("机构排行", "Top institutions"),
                   ("预警规则排行", "Top rules"), ("时延", "Latency")):
        assert zh in html and en in html
    assert 'EventSource("dashboard/stream"' in html and 'fetch("dashboard/data"' in html
    assert 'fetch("dashboard/session"' in html and 'history.replaceState' in html
    assert ".innerHTML" not in html, "untrusted text is set with textContent only"

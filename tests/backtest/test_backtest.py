"""The backtest (services/backtest): a known rule change replayed over generated events.

The candidate is the packaged rule base with R18's ``default_days`` lowered from 7 to 5. R18
(超量开药) judges each request on its own (no state), so the alerts the change adds can be
counted straight from the events and the catalogue: every drug ingredient group of an
outpatient-setting request at R18's scenes whose days of supply are 6 or 7 and whose drug has
no ``max_days.outpatient`` of its own. The backtest must find exactly those, lose none, and
report no other rule as different; its fast path (shared state, changed rules only) must agree
with running both sides in full, and the baseline with the worker's own per-event path
(``decision.handle_event`` on serialized state).
"""

from __future__ import annotations

import gzip
import json
import pathlib
import shutil
from typing import Any

import orjson
import pytest

from loadtest.gen_events import generate, write
from services import cli
from services.backtest import events as ev
from services.backtest.replay import Backtest, in_event_time_order, load_side
from services.rules import decision as dec
from services.rules.engine import DEFAULT_DATA

N_EVENTS = 20_000  # the 100,000-event figure comes from the benchmark run (docs/rules.md, "Backtesting a rule-base change")


def bundle_copy(dst: pathlib.Path) -> pathlib.Path:
    for section in ("rules", "kb"):
        shutil.copytree(DEFAULT_DATA / section, dst / section, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def set_param(bundle: pathlib.Path, rule_id: str, name: str, value: Any) -> None:
    path = bundle / "rules" / f"{rule_id}.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["rule"]["parameters"][name] = value
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate(N_EVENTS, days=120, seed=11)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    bundle = bundle_copy(tmp_path_factory.mktemp("candidate"))
    set_param(bundle, "R18", "default_days", 5)
    return bundle


@pytest.fixture(scope="module")
def sides(candidate: pathlib.Path) -> tuple[Any, Any]:
    return load_side(None), load_side(candidate)


def expected_r18_gains(events: list[dict[str, Any]], kb: Any, r18: dict[str, Any]) -> int:
    """The alerts R18 gains when default_days goes from 7 to 5, counted from the events alone."""
    p = r18["parameters"]
    gained = 0
    seen = set()
    for event in events:
        key = dec.event_key(event)
        if key in seen or event["scene"] not in r18["scenes"]:
            continue
        seen.add(key)
        enc = event["encounter"]
        if enc.get("med_type") in p["chronic_med_types"] or enc.get("med_type") in p["emergency_med_types"] \
                or (enc.get("department") or "").startswith(tuple(p["emergency_departments"])):
            continue  # chronic and emergency limits do not use default_days
        groups: dict[str, list[Any]] = {}
        for item in event["items"]:
            if item["kind"] != "drug":
                continue
            row = kb.item(item["code"], "drug", kb_day(item.get("started_at") or event["occurred_at"]))
            days = item.get("days_supply")
            if days is None and row is not None and row.get("daily_qty"):
                days = int(-(-item["quantity"] // row["daily_qty"]))
            if days:
                groups.setdefault(row["ingredient"] if row else "?" + item["code"], []).append((row, days))
        for group in groups.values():
            row = group[0][0]
            days = sum(d for _, d in group)
            if "outpatient" not in ((row or {}).get("max_days") or {}) and 5 < days <= 7:
                gained += 1
    return gained


def kb_day(iso: str) -> int:
    from services.rules.timeutil import day_of_time

    return day_of_time(iso)


def test_a_lower_r18_threshold_gains_exactly_the_requests_between_the_two_limits(events, sides) -> None:
    baseline, candidate = sides
    bt = Backtest(baseline, candidate)
    bt.run(in_event_time_order(events))
    report = bt.report()
    assert report["mode"] == "shared-state" and report["changed_rules"] == ["R18"]
    assert report["baseline_revision"] != report["candidate_revision"]
    assert report["events"] == len({dec.event_key(e) for e in events})
    r18 = report["rules"]["R18"]
    entry = next(r.entry for r in candidate.engine.rules if r.id == "R18")
    expected = expected_r18_gains(events, candidate.engine.kb, entry)
    assert expected > 50, "the generated events should exercise the change"
    assert r18["gained"] == expected
    assert r18["lost"] == 0  # a stricter limit cannot take an alert away
    assert r18["candidate"] == r18["baseline"] + expected
    assert r18["amount_candidate"] > r18["amount_baseline"]
    assert 0 < r18["patients"] <= expected and 0 < r18["institutions"]
    assert sum(b for _, b, _ in r18["by_day"]) == r18["baseline"]
    assert sum(c for _, _, c in r18["by_day"]) == r18["candidate"]
    assert set(report["rules"]) == {"R18"}  # only changed rules are counted by default
    examples = [e for e in report["examples"] if e["rule_id"] == "R18"]
    assert examples and all(e["change"] == "gained" and not e["baseline"] and e["candidate"] for e in examples)
    for e in examples:  # each gained alert names lines supplied for 6 or 7 days in all
        assert 5 < sum(ln["days_supply"] or 0 for ln in e["lines"]) <= 7 or any(
            ln["days_supply"] is None for ln in e["lines"])
        assert e["patient"] is None  # no pseudonym function given: no patient in the report


def test_the_fast_path_agrees_with_two_full_replays_and_with_the_worker(events, sides) -> None:
    baseline, candidate = sides
    ordered = in_event_time_order(events)
    fast = Backtest(baseline, candidate, all_rules=True)
    fast.run(ordered)
    full = Backtest(baseline, candidate, independent=True)
    full.run(ordered)
    a, b = fast.report(), full.report()
    assert b["mode"] == "independent"
    assert a["rules"] == b["rules"]
    assert a["examples"] == b["examples"]
    assert sum(r["baseline"] for r in a["rules"].values()) > 1000
    assert {rid for rid, r in a["rules"].items() if r["gained"] or r["lost"]} == {"R18"}
    # The worker's path: handle_event on serialized state, idempotency records and all.
    states: dict[str, bytes | None] = {}
    per_rule: dict[str, int] = {}
    for event in ordered:
        pid = event["patient"]["id"]
        new, outcome = dec.handle_event(baseline.engine, states.get(pid), event)
        if new is not None:
            states[pid] = new
        if not outcome["replayed"]:
            for alert in outcome["alerts"]:
                per_rule[alert["rule_id"]] = per_rule.get(alert["rule_id"], 0) + 1
    assert per_rule == {rid: r["baseline"] for rid, r in a["rules"].items() if r["baseline"]}


def test_a_window_parameter_forces_independent_state(tmp_path: pathlib.Path, events) -> None:
    """R24 (frequent visits) counts visits over window_days: widening it keeps the visits longer, so
    the two sides' states differ and the backtest must keep two (and still find R24's differences:
    with a wider window and a lower maximum, alerts can only be gained)."""
    bundle = bundle_copy(tmp_path / "c")
    path = bundle / "rules" / "R24.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["rule"]["parameters"].update(window_days=60, max_visits=2)  # wider and stricter: only more alerts
    doc["rule"]["window"] = "pt:60d"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    base, cand = load_side(None), load_side(bundle)
    assert base.engine.windows.visits < cand.engine.windows.visits
    bt = Backtest(base, cand)
    assert bt.plan.changed == ("R24",) and not bt.plan.shared
    assert "window" in (bt.plan.why_independent or "")
    bt.run(in_event_time_order(events))
    report = bt.report()
    assert report["mode"] == "independent" and set(report["rules"]) >= {"R24", "R18"}
    assert report["rules"]["R24"]["gained"] > 0 and report["rules"]["R24"]["lost"] == 0
    assert all(r["gained"] == r["lost"] == 0 for rid, r in report["rules"].items() if rid != "R24")


def test_bad_lines_are_reported_by_number_and_skipped(tmp_path: pathlib.Path, events) -> None:
    path = tmp_path / "e.jsonl"
    good = [orjson.dumps(e) for e in events[:5]]
    broken = dict(events[5], patient={**events[5]["patient"], "birth_date": "2999-01-01"})
    path.write_bytes(b"\n".join([good[0], good[1], b"{oops", orjson.dumps(broken), b"", *good[2:]]) + b"\n")
    bad = ev.BadLines()
    out = list(ev.read_file(path, bad))
    assert len(out) == 5 and bad.count == 2
    assert bad.first[0]["line"] == "3"
    assert bad.first[1]["line"] == "4" and "patient.birth_date" in bad.first[1]["error"]
    with pytest.raises(ev.EventsError, match="line 3"):
        list(ev.read_file(path, ev.BadLines(), strict=True))


def test_the_command_writes_json_and_html(tmp_path: pathlib.Path, events, candidate, capsys) -> None:
    path = tmp_path / "events.jsonl.gz"
    write(path, events[:4000], retries=0.02, bad=2)
    assert gzip.open(path).readline().startswith(b"{")
    out_json, out_html = tmp_path / "r.json", tmp_path / "r.html"
    code = cli.main(["backtest", "--events", str(path), "--candidate", str(candidate),
                     "--json", str(out_json), "--html", str(out_html)])
    assert code == 0
    report = json.loads(out_json.read_text(encoding="utf-8"))
    assert report["duplicates"] > 0 and report["invalid_lines"]["count"] == 2
    assert report["events"] == len({dec.event_key(e) for e in events[:4000]})
    assert report["rules"]["R18"]["gained"] > 0
    page = out_html.read_text(encoding="utf-8")
    assert page.count("<svg") == 1 and "<script" not in page and "R18" in page
    assert all(e["patient"].startswith("p-") for e in report["examples"])  # pseudonyms, never the id
    printed = capsys.readouterr()
    assert "R18" in printed.out and "events/s" in printed.err


def test_a_bundle_that_does_not_load_exits_2(tmp_path: pathlib.Path, capsys) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("", encoding="utf-8")
    assert cli.main(["backtest", "--events", str(path), "--candidate", str(tmp_path / "missing")]) == 2
    assert "does not load" in capsys.readouterr().err

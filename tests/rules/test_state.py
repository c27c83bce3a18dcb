"""State codec, eviction by event time, and the reserved "seen" key."""

from __future__ import annotations

from datetime import date, timedelta

from services.rules import state as st
from services.rules.engine import Engine
from services.rules.timeutil import day_of_date

ATOR = "XC10AAA067A001010104321"


def _event(eid: str, day: str, *, code: str = ATOR, ds: int = 30, scene: int = 2, enc: str | None = None) -> dict:
    return {
        "event_id": eid, "scene": scene, "occurred_at": f"{day}T09:00:00+08:00",
        "institution": {"id": "H1", "level": 3}, "patient": {"id": "P-state", "gender": "M", "birth_date": "1960-01-01"},
        "encounter": {"id": enc or f"enc-{eid}", "type": "outpatient"}, "diagnoses": [],
        "items": [{"line_id": "1", "code": code, "kind": "drug", "quantity": 30.0, "days_supply": ds, "amount": 3.9}],
    }


def test_loads_empty_gives_new_state() -> None:
    assert st.loads(None) == {}
    assert st.loads(b"") == {}
    assert st.loads(st.dumps({"d": 5})) == {"d": 5}


def test_dumps_is_compact() -> None:
    assert st.dumps({"d": 1, "L": [["a", 1]]}) == b'{"d":1,"L":[["a",1]]}'


def test_seen_is_left_alone(engine: Engine) -> None:
    seen = [["H1:x", 1, "d-1", [{"rule_id": "R19"}]]]
    state = {"seen": seen}
    new_state, _ = engine.process(state, _event("e1", "2026-03-01"))
    assert new_state["seen"] is seen and new_state["seen"] == [["H1:x", 1, "d-1", [{"rule_id": "R19"}]]]
    assert "L" in new_state


def test_ledger_evicted_beyond_window_by_event_time(engine: Engine) -> None:
    window = engine.windows.ledger
    assert window >= 90
    state, _ = engine.process(None, _event("e1", "2026-01-01", ds=30))
    assert [r[0] for r in state["L"]] == ["atorvastatin"]
    start = date(2026, 1, 1)
    last = start + timedelta(days=29)  # the supply's last day: the window runs from it (R12's look-back)
    # one day inside the window: kept
    inside = (last + timedelta(days=window - 1)).isoformat()
    kept, _ = engine.process(dict(state, L=[list(r) for r in state["L"]]), _event("e2", inside, code="XB01ACA056A001010100217"))
    assert any(r[0] == "atorvastatin" for r in kept["L"])
    # at the window edge (by event time, whatever the wall clock): evicted
    edge = (last + timedelta(days=window)).isoformat()
    gone, _ = engine.process(state, _event("e3", edge, code="XB01ACA056A001010100217"))
    assert [r[0] for r in gone["L"]] == ["aspirin"]
    assert gone["d"] == day_of_date(edge)


def test_long_supply_kept_while_active(engine: Engine) -> None:
    state, _ = engine.process(None, _event("e1", "2026-01-01", ds=180))
    later = (date(2026, 1, 1) + timedelta(days=120)).isoformat()
    state, _ = engine.process(state, _event("e2", later, code="XB01ACA056A001010100217"))
    assert any(r[0] == "atorvastatin" for r in state["L"])


def test_older_event_does_not_move_time_back(engine: Engine) -> None:
    state, _ = engine.process(None, _event("e1", "2026-03-01"))
    state, _ = engine.process(state, _event("e2", "2026-02-01", code="XB01ACA056A001010100217"))
    assert state["d"] == day_of_date("2026-03-01")


def test_resent_prescription_is_not_counted_twice(engine: Engine) -> None:
    state, _ = engine.process(None, _event("e1", "2026-03-01", enc="same"))
    state, alerts = engine.process(state, _event("e2", "2026-03-01", enc="same", scene=7))
    assert not [a for a in alerts if a["rule_id"] in ("R19", "R25")]
    assert len(state["L"]) == 1 and state["L"][0][st.L_DAYS] == 30 and len(state["L"][0][st.L_BUYS]) == 1  # not doubled


def test_reapplied_purchases_are_counted_once_per_encounter(engine: Engine) -> None:
    # Two purchases of one ingredient on one day at two encounters, then both
    # applied again (an NHSA history re-sent after the idempotency record is gone).
    state = engine.apply(None, _event("a", "2026-03-02", enc="enc-a"))
    state = engine.apply(state, _event("b", "2026-03-02", enc="enc-b"))
    once = st.dumps(state)
    for _ in range(3):
        state = engine.apply(state, _event("a", "2026-03-02", enc="enc-a"))
        state = engine.apply(state, _event("b", "2026-03-02", enc="enc-b"))
    assert st.dumps(state) == once
    assert len(state["L"]) == 2  # one supply per encounter
    # a genuine third purchase in the month still counts
    state = engine.apply(state, _event("c", "2026-03-03", enc="enc-c"))
    assert len(state["L"]) == 3


def test_idempotency_record_keeps_an_older_event_and_restores_full_alerts(engine: Engine) -> None:
    from services.rules import decision as dec

    newer = _event("n1", "2026-03-05", code="XB01ACA056A001010100217")
    older = {**_event("o1", "2026-03-01"), "patient": {"id": "P-state", "gender": "F", "birth_date": "1960-01-01"},
             "diagnoses": [{"code": "N40", "name": "前列腺增生", "main": True}]}
    blob, _ = dec.handle_event(engine, None, newer)
    blob, first = dec.handle_event(engine, blob, older)  # four days older than the newest event
    assert first["replayed"] is False and any(a["rule_id"] == "R03" for a in first["alerts"])
    unchanged, retry = dec.handle_event(engine, blob, older)
    assert unchanged is None and retry["replayed"] is True
    assert retry["alerts"] == first["alerts"]  # the static fields come back from the rule table
    stored = st.loads(blob)["seen"][-1][3]
    assert stored and all(k not in a for a in stored for k in dec.STATIC_ALERT_KEYS)

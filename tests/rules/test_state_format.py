"""Patient state formats: main's format 1 is read, migrated to format 2 and back, and gives the same decisions.

``fixtures/state_v1.json`` was captured by running the golden cases' events through
``services.rules.decision.handle_event`` with the code of ``main`` before versioned
state (commit in its ``captured_from``): the bytes a worker of that release wrote to
the changelog, and the alerts it gave for one more event.
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import orjson
import pytest

from services.rules import decision as dec
from services.rules import state as st
from services.rules.engine import Engine

FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "state_v1.json").read_text(encoding="utf-8"))
PATIENTS = FIXTURE["patients"]
IDS = [p["case"] for p in PATIENTS]


def _replay(engine: Engine, patient: dict[str, Any]) -> bytes:
    blob = None
    for s in patient["status"]:
        blob = st.dumps(engine.apply_status(st.loads(blob), s))
    for ev in patient["events"]:
        new, _ = dec.handle_event(engine, blob, copy.deepcopy(ev))
        blob = new if new is not None else blob
    assert blob is not None
    return blob


# Intended rule changes since the fixture was captured (issue 10): a rule that now fires where main's did not.
NEW_FIRINGS = {"R04#3": {"R04"}}  # R04 warns at order entry (scene 4)


def _rule_agnostic(state: dict[str, Any], case: str = "") -> dict[str, Any]:
    """A state with its recorded alerts reduced to (rule id, line ids): rule texts and evidence change
    with the rule base (messages, evidence fields), the state layout and what fired must not."""
    out = copy.deepcopy(state)
    if out.get("L") == []:  # an event without supplies no longer writes an empty ledger (issue 10)
        del out["L"]
    for r in out.get("L", ()):  # issue 10: ledger rows carry their stage and amount (L_RANK, L_AMT), optional
        del r[st.L_RANK:]  # trailing fields after L_PAST and L_PARTS ([] when empty)
        while len(r) > st.L_PAST and r[-1] == []:
            del r[-1]
    # Issue 10: visits and period counters carry the event id that recorded them as an optional trailing
    # field (evidence names earlier events); a release before reads the rows as it did.
    # Open-stay accumulators and courses carry the log of their events (reversible by a cancellation) the same way.
    for key, width in (("V", st.V_EVENT), ("P", st.P_EVENT), ("E", st.E_LOG), ("C", st.C_LOG)):
        if key in out:
            out[key] = [r[:width] for r in out[key]]
    # Issue 10: an open-stay counter carries the days its lines cover (K_DAYS), an optional trailing field.
    for w in out.get("E", ()):
        w[st.E_COUNTERS] = [c[:st.K_DAYS] for c in w[st.E_COUNTERS]]
    new = NEW_FIRINGS.get(case, set())
    for r in out.get("seen", ()):
        r[-1] = [[a["rule_id"], a["line_ids"]] for a in r[-1] if a["rule_id"] not in new]
    return out


def _fired(alerts: list[dict[str, Any]], case: str = "") -> list[tuple[str, list[str]]]:
    new = NEW_FIRINGS.get(case, set())
    return [(a["rule_id"], a["line_ids"]) for a in alerts if a["rule_id"] not in new]


def test_the_fixture_covers_every_section() -> None:
    sections = set().union(*(orjson.loads(p["state"]) for p in PATIENTS))
    assert sections >= {"v", "d", "L", "V", "A", "E", "P", "C", "S", "seen"}
    assert FIXTURE["format"] == 1 and all(orjson.loads(p["state"])["v"] == 1 for p in PATIENTS)


@pytest.mark.parametrize("patient", PATIENTS, ids=IDS)
def test_this_release_writes_format_1_byte_for_byte(engine: Engine, patient: dict[str, Any]) -> None:
    assert st.WRITE_FORMAT == 1  # until every worker reads format 2 (docs/architecture.md)
    assert _rule_agnostic(orjson.loads(_replay(engine, patient)), patient["case"]) == _rule_agnostic(orjson.loads(patient["state"]))


@pytest.mark.parametrize("patient", PATIENTS, ids=IDS)
def test_format_1_migrates_to_2_and_back(patient: dict[str, Any]) -> None:
    v1 = orjson.loads(patient["state"])
    v2 = st.migrate(copy.deepcopy(v1), 2)
    assert v2["v"] == 2 and all(len(r) == 3 for r in v2["seen"])
    assert [r[-1] for r in v2["seen"]] == [r[-1] for r in v1["seen"]]
    assert {k: v for k, v in v2.items() if k not in ("v", "seen")} == {k: v for k, v in v1.items() if k not in ("v", "seen")}
    assert st.migrate(copy.deepcopy(v2), 1) == v1


@pytest.mark.parametrize("write_format", [1, 2])
@pytest.mark.parametrize("patient", PATIENTS, ids=IDS)
def test_a_main_state_gives_mains_decisions_in_either_format(
    engine: Engine, patient: dict[str, Any], write_format: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(st, "WRITE_FORMAT", write_format)
    loaded = st.loads(patient["state"].encode())
    assert loaded.get("v") == write_format
    new, outcome = dec.handle_event(engine, st.dumps(loaded), copy.deepcopy(patient["next_event"]))
    assert new is not None and _fired(outcome["alerts"], patient["case"]) == _fired(patient["next_alerts"])
    assert st.loads(new)["v"] == write_format
    # a retry of an event recorded by main is answered from main's record
    last = patient["events"][-1]
    again, replay = dec.handle_event(engine, patient["state"].encode(), copy.deepcopy(last))
    assert again is None and replay["replayed"] is True
    assert replay["decision_id"] == orjson.loads(patient["state"])["seen"][-1][2]


def test_a_format_2_state_is_read_by_a_format_1_writer(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    patient = PATIENTS[0]
    monkeypatch.setattr(st, "WRITE_FORMAT", 2)
    v2_bytes = _replay(engine, patient)
    assert orjson.loads(v2_bytes)["v"] == 2 and all(len(r) == 3 for r in orjson.loads(v2_bytes)["seen"])
    monkeypatch.setattr(st, "WRITE_FORMAT", 1)
    assert _rule_agnostic(st.loads(v2_bytes)) == _rule_agnostic(orjson.loads(patient["state"]))


def test_an_unknown_format_is_refused_with_what_to_do() -> None:
    with pytest.raises(st.StateFormatError, match="reads formats"):
        st.loads(b'{"v": 9, "d": 1}')
    assert st.loads(b'{"S": []}') == {"S": []}  # no version, no event yet: format 1

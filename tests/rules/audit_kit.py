"""A small kit for the independent audit cases (issue 10): build what a real HIS sends, drive the engine
as the worker does (state through its codec, provider timelines beside it), and read the answer.

Written apart from the golden cases: the expectations come from each rule's definition, docs/rules.md
and docs/integration.md, not from the cases beside the rules.
"""

from __future__ import annotations

import re
from typing import Any

from services.contracts.event import Event
from services.contracts.provider_status import parse as parse_provider
from services.contracts.status import PatientStatus
from services.rules import state as st
from services.rules.engine import Engine
from services.rules.providers import Providers

LOWER_WORD = re.compile(r"[a-z]{3,}")
CJK = re.compile(r"[\u4e00-\u9fff]")


def at(d: str, hour: int = 9, minute: int = 0) -> str:
    return f"{d}T{hour:02d}:{minute:02d}:00+08:00"


def line(lid: str, code: str, kind: str = "drug", qty: float = 1, price: float = 1.0, *, days: int | None = None,
         start: str | None = None, unit: str | None = None, doctor: str | None = None,
         take_home: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"line_id": lid, "code": code, "kind": kind, "quantity": qty, "unit_price": price,
                           "amount": round(qty * price, 2)}
    if days is not None:
        out["days_supply"] = days
    if start is not None:
        out["started_at"] = start if "T" in start else at(start, 8)
    if unit is not None:
        out["unit"] = unit
    if doctor is not None:
        out["doctor_id"] = doctor
    if take_home:
        out["take_home"] = True
    return out


def ev(pid: str, eid: str, when: str, *, scene: int = 2, inst: str = "H1", level: int | None = 3,
       region: str | None = "330100", pregion: str | None = "330100", gender: str = "M",
       birth: str = "1960-05-01", ins: str | None = "310", etype: str = "outpatient", enc: str | None = None,
       dx: list[tuple[str, str]] | None = None, items: list[dict[str, Any]] | None = None,
       **encounter: Any) -> dict[str, Any]:
    """One native event as a HIS sends it, in the wire form the worker hands the engine."""
    when = when if "T" in when else at(when)
    institution: dict[str, Any] = {"id": inst}
    if level is not None:
        institution["level"] = level
    if region is not None:
        institution["region"] = region
    patient: dict[str, Any] = {"id": pid, "gender": gender, "birth_date": birth}
    if ins is not None:
        patient["insurance_type"] = ins
    if pregion is not None:
        patient["region"] = pregion
    for k in ("admitted_at", "discharged_at"):
        if k in encounter and encounter[k] and "T" not in encounter[k]:
            encounter[k] = at(encounter[k], 8 if k == "admitted_at" else 10)
    body = {
        "event_id": eid, "scene": scene, "occurred_at": when, "institution": institution, "patient": patient,
        "encounter": {"id": enc or f"{eid}-enc", "type": etype, **{k: v for k, v in encounter.items() if v is not None}},
        "diagnoses": [{"code": c, "name": n, "main": i == 0} for i, (c, n) in enumerate(dx or [])],
        "items": items or [],
    }
    return Event.model_validate(body).to_wire()


def stay(pid: str, eid: str, scene: int, when: str, items: list[dict[str, Any]] | None = None, *, adm: str,
         dis: str | None = None, inst: str = "H1", enc: str | None = None, dx: list[tuple[str, str]],
         **kw: Any) -> dict[str, Any]:
    """An event of an inpatient stay (medical type 21), admitted ``adm``; its encounter id from the patient,
    institution and admission date unless given, so every event of one stay names the same encounter."""
    return ev(pid, eid, when, scene=scene, inst=inst, etype="inpatient", enc=enc or f"{pid}-{inst}-{adm[:10]}",
              med_type="21", admitted_at=adm, discharged_at=dis, items=items or [], dx=dx, **kw)


def status(pid: str, state: str, since: str, updated: str, reason: str = "公安户籍注销",
           until: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"patient_id": pid, "status": state, "effective_from": since,
                            "updated_at": updated if "T" in updated else at(updated), "reason": reason}
    if until:
        body["effective_to"] = until
    return PatientStatus.model_validate(body).to_wire()


class Story:
    """One patient's history as the worker holds it, with the bureau's provider timelines beside it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.blob: bytes | None = None
        self.providers = Providers()
        self.unchecked: list[dict[str, Any]] = []
        self.texts: list[dict[str, Any]] = []

    def provider(self, record: dict[str, Any]) -> Story:
        self.providers.apply(parse_provider(record).to_wire())
        return self

    def status(self, s: dict[str, Any]) -> Story:
        self.blob = st.dumps(self.engine.apply_status(st.loads(self.blob), s))
        return self

    def send(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        state, alerts, unchecked, _ = self.engine.decide_all(st.loads(self.blob), event, self.providers)
        self.blob = st.dumps(state)
        self.unchecked = unchecked
        self.texts.extend(alerts)
        # every alert of every situation: Chinese text fully Chinese, English fully English
        assert [f for a in alerts for f in language_faults(a)] == []
        return alerts

    def feed(self, *events: dict[str, Any]) -> Story:
        for e in events:
            self.send(e)
        return self

    def hits(self, event: dict[str, Any], rule: str) -> list[dict[str, Any]]:
        return [a for a in self.send(event) if a["rule_id"] == rule]

    def one(self, event: dict[str, Any], rule: str) -> dict[str, Any] | None:
        hits = self.hits(event, rule)
        assert len(hits) <= 1, hits
        return hits[0] if hits else None

    @property
    def state(self) -> dict[str, Any]:
        return st.loads(self.blob)


def rules_of(alerts: list[dict[str, Any]]) -> set[str]:
    return {a["rule_id"] for a in alerts}


def evidence_events(alert: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in alert["evidence"] if e["kind"] == "event"]


def language_faults(alert: dict[str, Any]) -> list[str]:
    """Chinese text fully Chinese (no English enumeration words), English text fully English."""
    faults = []
    if LOWER_WORD.search(alert["message_zh"]):
        faults.append(f"{alert['rule_id']} message_zh has English: {alert['message_zh']}")
    if alert["rule_id"] != "R31" and CJK.search(alert["message_en"]):  # R31 quotes the bureau's free-text reason
        faults.append(f"{alert['rule_id']} message_en has Chinese: {alert['message_en']}")
    return faults

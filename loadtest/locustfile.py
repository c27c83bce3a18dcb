"""Locust scenarios modelled on hospital traffic against ``POST /v1/events``.

    PRESETTLE_API_KEY=dev-key-h1:H1 locust -f loadtest/locustfile.py --headless \\
        -u 200 -r 20 -t 10m --host http://127.0.0.1:8000 --csv loadtest/out/peak

Three kinds of virtual user, weighted like a regional day (weights in brackets):

* ``OutpatientVisit`` [6] — the morning peak: 挂号 registration (scene 1) →
  收费登记 prescription (scene 2) → 门诊预结算 pre-settlement (scene 7) →
  门诊结算 settlement (scene 6), one patient per visit;
* ``PharmacyPurchase`` [3] — 购药划卡 (scene 10) at a designated pharmacy;
* ``InpatientStay`` [1] — 住院登记 admission (3) → daily 执行医嘱 orders (5) →
  住院预结算 (9) → 出院结算 discharge settlement (8).

The synthetic population: adults with an age and sex mix; chronic patients
(hypertension, type 2 diabetes, dyslipidaemia, coronary disease — often more
than one) on 门诊慢特病 (med_type 14) with 4-week supplies, acute visits
without drugs, pharmacy purchases of a week's supply. Drugs and services come
from the knowledge base (``services/data/kb`` when the repository is beside this
file, else a built-in list), chosen so that ordinary traffic is mostly clean:
products without restrictions, one product per class, no interacting pairs,
prices within caps. About ``PRESETTLE_TRIGGER_SHARE`` (default 0.08) of
journeys are built to trigger a rule: a prostate diagnosis for a female
patient (R03), the same ingredient bought again while most of the last supply
remains (R19), a readmission for a related diagnosis 5 days after discharge
(R22). Other rules may fire too — the knowledge base decides.

Configuration (environment):

* ``PRESETTLE_API_KEY`` — ``KEY:INSTITUTION``, the key (``X-API-Key``) and the institution it
  belongs to; a list ``key1:H1,key2:H2`` spreads users over several institutions; a plain
  development key knows its institution (``dev-key-h1`` → H1; any other plain key → H1). The
  same format as ``bench_e2e`` (``loadtest/apikey.py``). Default ``dev-key-h1:H1``;
* ``PRESETTLE_THINK_S`` — mean think time between a journey's steps (default 1.0 s);
* ``PRESETTLE_BUDGET_MS`` — ``?budget_ms=`` on every request (default: the service's);
* ``PRESETTLE_TRIGGER_SHARE`` — share of rule-triggering journeys (default 0.08);
* ``PRESETTLE_KB_DIR`` — the knowledge base to draw codes from (default ``../services/data/kb``);
* ``PRESETTLE_SEED`` — seed of the synthetic population (default 20260302).

A response counts as a failure when the HTTP status is not 200 *or* the
decision's ``engine_status`` is not ``evaluated`` (a timeout or an unavailable
engine is a failed pre-settlement check, even with HTTP 200). A 401 or 403 stops
the whole run at once: the message says what to set, and locust exits with code 2.
At the end the run prints p50/p95/p99, the failure ratio and the alerts seen per rule.

Runs on load-generator machines: it imports nothing from ``services`` (copy
``apikey.py`` beside it).
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task
from locust.exception import StopUser

try:
    from loadtest.apikey import KeyFormatError, parse_api_keys, rejection_message, retired_variables
except ImportError:  # copied alone with apikey.py to a load-generator machine
    from apikey import KeyFormatError, parse_api_keys, rejection_message, retired_variables  # type: ignore[no-redef]

CST = timezone(timedelta(hours=8))
RUN = uuid.uuid4().hex[:8]  # patient and event ids of this run never collide with earlier runs
KB_DIR = Path(os.environ.get("PRESETTLE_KB_DIR", Path(__file__).resolve().parent.parent / "services" / "data" / "kb"))
BUSINESS_DAY = date(2026, 3, 2)  # the simulated calendar starts here; KB rows are picked as of this day

SCENE_NAMES = {
    1: "门诊挂号 registration", 2: "门诊收费登记 prescription", 3: "住院登记 admission",
    5: "住院执行医嘱 daily orders", 6: "门诊结算 settlement", 7: "门诊预结算 pre-settlement",
    8: "住院结算 discharge settlement", 9: "住院预结算 inpatient pre-settlement", 10: "购药划卡 pharmacy",
}


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


THINK_S = max(0.0, _env_float("PRESETTLE_THINK_S", 1.0))
TRIGGER_SHARE = min(1.0, max(0.0, _env_float("PRESETTLE_TRIGGER_SHARE", 0.08)))
BUDGET_MS = os.environ.get("PRESETTLE_BUDGET_MS", "").strip()


try:
    KEYS = parse_api_keys(os.environ.get("PRESETTLE_API_KEY", "dev-key-h1:H1"))
except KeyFormatError as _exc:
    raise SystemExit(f"locustfile: {_exc}") from None
for _warning in retired_variables(dict(os.environ)):
    print(f"locustfile: {_warning}", flush=True)
REJECTED: list[str] = []  # the first 401/403 message; the run stops on it

# -- knowledge base: codes the engine knows ------------------------------------------
BUILTIN_DRUGS = [
    {"code": "XC08CAH001A001010100137", "name": "苯磺酸氨氯地平片", "ingredient": "amlodipine", "class": "C08CA",
     "unit": "片", "daily_qty": 1, "price_cap": 0.5},
    {"code": "XC10AAA067A001010104321", "name": "阿托伐他汀钙片", "ingredient": "atorvastatin", "class": "C10AA",
     "unit": "片", "daily_qty": 1, "price_cap": 3.5},
    {"code": "XA10BAH027A001010100729", "name": "盐酸二甲双胍片", "ingredient": "metformin", "class": "A10BA",
     "unit": "片", "daily_qty": 3, "price_cap": 0.6},
    {"code": "XB01ACA056A001010100217", "name": "阿司匹林肠溶片", "ingredient": "aspirin", "class": "B01AC",
     "unit": "片", "daily_qty": 1},
]
BUILTIN_SERVICES = {
    "consult": {"code": "001102000010000", "name": "普通门诊诊查费", "price_cap": 10.0},
    "bed": {"code": "001109000010000", "name": "床位费(普通病房三人间)", "price_cap": 50.0},
    "ward_round": {"code": "001102000050000", "name": "住院诊查费", "price_cap": 20.0},
}
# Restrictions that would make an ordinary prescription raise a rule; such products are left out.
RESTRICTED = ("indications", "settings", "sex", "child_only", "neonate_only", "second_line", "insutypes",
              "course_days", "herb_never_paid", "herb_single_unpaid")


def _kb_rows(table: str) -> list[dict[str, Any]]:
    try:
        doc = json.loads((KB_DIR / f"{table}.json").read_text(encoding="utf-8"))
        return [r for r in doc.get("rows", []) if isinstance(r, dict) and (r.get("code") or r.get("a"))]
    except (OSError, ValueError):
        return []


def _in_force(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    day = BUSINESS_DAY.isoformat()
    return [r for r in rows if str(r.get("effective_from") or "0000") <= day
            and (not r.get("effective_to") or str(r["effective_to"]) >= day)]


def _clean_drugs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    western = [r for r in rows if r.get("type", "western") == "western" and r.get("class") and r.get("ingredient")]
    selected = {r["ingredient"] for r in western if r.get("vbp_selected") is True}
    return [r for r in western
            if not any(r.get(k) for k in RESTRICTED) and int(r.get("min_level") or 1) <= 3
            # volume-procurement: use a selected product where the ingredient has one (R33)
            and (r.get("vbp_selected") is True or r["ingredient"] not in selected)]


DRUGS = _clean_drugs(_in_force(_kb_rows("drugs"))) or BUILTIN_DRUGS
BY_INGREDIENT: dict[str, list[dict[str, Any]]] = {}
BY_CLASS: dict[str, list[dict[str, Any]]] = {}
for _d in DRUGS:
    BY_INGREDIENT.setdefault(str(_d["ingredient"]), []).append(_d)
    BY_CLASS.setdefault(str(_d["class"]), []).append(_d)
INTERACTING = {frozenset((str(r["a"]), str(r["b"]))) for r in _kb_rows("interactions") if r.get("a") and r.get("b")}

_services = {r["code"]: r for r in _in_force(_kb_rows("services"))}
SERVICES = {k: {**v, **_services.get(v["code"], {})} for k, v in BUILTIN_SERVICES.items()}

# Chronic conditions and the drug classes that treat them (classes looked up in the KB).
CONDITIONS = [
    ("I10", "特发性(原发性)高血压", ["C08CA", "C09CA", "C09AA", "C07AB", "C03AA"], 0.45),
    ("E11", "2型糖尿病", ["A10BA", "A10BB"], 0.25),
    ("E78.5", "高脂血症", ["C10AA"], 0.20),
    ("I25.1", "动脉粥样硬化性心脏病", ["B01AC", "C10AA", "C01DA"], 0.10),
]
ACUTE = [("J06.9", "急性上呼吸道感染"), ("K29.7", "胃炎"), ("M54.5", "下背痛"), ("R51", "头痛")]
INPATIENT_DX = [("J18.9", "肺炎", "J18.0"), ("K35.8", "急性阑尾炎", None), ("I63.9", "脑梗死", None),
                ("I50.9", "心力衰竭", None)]
DEPARTMENTS = ["心内科", "内分泌科", "呼吸内科", "全科", "肾内科", "普外科", "神经内科"]


def _pick_regimen(rng: random.Random, conditions: list[tuple[str, str, list[str], float]]) -> list[dict[str, Any]]:
    """One product per class, no two ingredients known to interact."""
    chosen: list[dict[str, Any]] = []
    classes: set[str] = set()
    for _, _, wanted, _ in conditions:
        for cls in rng.sample(wanted, k=len(wanted)):
            if cls in classes or cls not in BY_CLASS:
                continue
            drug = rng.choice(BY_CLASS[cls])
            if any(frozenset((drug["ingredient"], c["ingredient"])) in INTERACTING for c in chosen):
                continue
            chosen.append(drug)
            classes.add(cls)
            break
    return chosen or [rng.choice(DRUGS)]


def _drug_line(i: int, drug: dict[str, Any], days: int) -> dict[str, Any]:
    daily = float(drug.get("daily_qty") or 1)
    price = round(min(float(drug.get("price_cap") or 0.8), 0.8), 2)
    qty = round(daily * days, 1)
    return {"line_id": str(i), "code": drug["code"], "name": drug.get("name"), "kind": "drug", "quantity": qty,
            "unit": drug.get("unit", "片"), "unit_price": price, "amount": round(qty * price, 2), "days_supply": days}


def _service_line(i: int, key: str, at: datetime | None = None) -> dict[str, Any]:
    svc = SERVICES[key]
    price = float(svc.get("price_cap") or 10.0)
    line = {"line_id": str(i), "code": svc["code"], "name": svc.get("name"), "kind": "service", "quantity": 1,
            "unit": svc.get("unit", "次"), "unit_price": price, "amount": price}
    if at is not None:
        line["started_at"] = at.isoformat()
    return line


class Population:
    """Synthetic insured people: sex, age, region, insurance type (thread-safe counter)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._n = 0
        self._lock = threading.Lock()

    def person(self, sex: str | None = None, min_age: int = 18) -> dict[str, Any]:
        with self._lock:
            self._n += 1
            n = self._n
            rng = self.rng
            age = min(92, max(min_age, int(rng.triangular(18, 92, 62))))
            birth = date(BUSINESS_DAY.year - age, rng.randint(1, 12), rng.randint(1, 28))
            gender = sex or rng.choice("MF")
            insurance = rng.choices(["310", "390"], weights=[6, 4])[0]  # 职工 / 居民
        return {"id": f"LT{RUN}{n:07d}", "gender": gender, "birth_date": birth.isoformat(),
                "insurance_type": insurance, "region": "330100"}


POPULATION = Population(seed=int(os.environ.get("PRESETTLE_SEED", "20260302")))
SEEN_ALERTS: Counter[str] = Counter()
DESIGNED: Counter[str] = Counter()
_stats_lock = threading.Lock()


class Hospital(FastHttpUser):
    """Shared plumbing: one institution key per user, event ids, the semantic check."""

    abstract = True
    connection_timeout = 10.0
    network_timeout = 30.0

    def on_start(self) -> None:
        key, institution = random.choice(KEYS)
        self.key = key
        self.institution = institution
        self.headers = {"X-API-Key": key, "Content-Type": "application/json"}
        self.rng = random.Random()
        self.seq = 0
        self.uid = uuid.uuid4().hex[:6]
        # Each user walks its own business calendar from an early March 2026 morning.
        self.clock = datetime.combine(BUSINESS_DAY, datetime.min.time(), CST) + timedelta(
            hours=7, minutes=30 + self.rng.randint(0, 120))

    def think(self) -> None:
        if THINK_S:
            import gevent

            gevent.sleep(self.rng.uniform(0.5, 1.5) * THINK_S)

    def event(self, scene: int, patient: dict[str, Any], encounter: dict[str, Any], when: datetime,
              diagnoses: list[dict[str, Any]] | None = None,
              items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        self.seq += 1
        return {
            "event_id": f"lt-{RUN}-{self.uid}-{self.seq}",
            "scene": scene,
            "occurred_at": when.isoformat(),
            "institution": {"id": self.institution, "level": 3, "region": "330100"},
            "patient": patient,
            "encounter": encounter,
            "diagnoses": diagnoses or [],
            "items": items or [],
        }

    def send(self, body: dict[str, Any], expect: str | None = None) -> dict[str, Any] | None:
        """POST one event; HTTP != 200 or engine_status != evaluated is a failure; 401/403 stop the run."""
        path = "/v1/events" + (f"?budget_ms={BUDGET_MS}" if BUDGET_MS else "")
        name = f"/v1/events [{body['scene']} {SCENE_NAMES.get(body['scene'], '')}]"
        refused: tuple[int, str] | None = None
        answer: dict[str, Any] | None = None
        with self.client.post(path, data=json.dumps(body), headers=self.headers, name=name,
                              catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {(resp.text or '')[:160]}")
                if resp.status_code in (401, 403):
                    refused = (resp.status_code, resp.text or "")
            else:
                try:
                    answer = resp.json()
                except ValueError:
                    resp.failure("response is not JSON")
                else:
                    status = answer.get("engine_status")
                    if status == "evaluated":
                        resp.success()
                    else:
                        resp.failure(f"engine_status={status}")
                        answer = None
        if refused:
            self._stop_run(*refused)  # raises StopUser
        if answer is None:
            return None
        rules = [a.get("rule_id", "?") for a in answer.get("alerts", [])]
        with _stats_lock:
            SEEN_ALERTS.update(rules)
            if expect:
                DESIGNED[f"{expect} designed"] += 1
                if expect in rules:
                    DESIGNED[f"{expect} raised"] += 1
        return answer


    def _stop_run(self, status: int, body: str) -> None:
        """The service refused the key (401) or its institution (403): no point going on."""
        with _stats_lock:
            first = not REJECTED
            if first:
                REJECTED.append(rejection_message(status, body, self.key, self.institution, "locust"))
        if first:
            import gevent

            print(REJECTED[0], flush=True)
            self.environment.process_exit_code = 2
            if self.environment.runner is not None:
                gevent.spawn(self.environment.runner.quit)  # from outside this user's greenlet
        raise StopUser()


class OutpatientVisit(Hospital):
    """门诊: registration → prescription → pre-settlement → settlement (the morning peak)."""

    weight = 6

    @task
    def visit(self) -> None:
        rng = self.rng
        trigger = rng.random() < TRIGGER_SHARE
        med_type, department = "11", rng.choice(DEPARTMENTS)
        items: list[dict[str, Any]] = [_service_line(1, "consult")]
        if trigger:  # R03: a prostate diagnosis recorded for a female patient
            patient = POPULATION.person(sex="F", min_age=40)
            dx = [{"code": "N40", "name": "前列腺增生", "main": True}]
        elif rng.random() < 0.6:  # a chronic patient's monthly visit (门诊慢特病)
            patient = POPULATION.person(min_age=35)
            conditions = rng.sample(CONDITIONS, k=rng.choices([1, 2], weights=[6, 4])[0])
            dx = [{"code": c[0], "name": c[1], "main": i == 0} for i, c in enumerate(conditions)]
            med_type = "14"
            items += [_drug_line(i + 2, d, 28) for i, d in enumerate(_pick_regimen(rng, conditions))]
        else:  # an acute visit: consultation only
            patient = POPULATION.person()
            code, name = rng.choice(ACUTE)
            dx = [{"code": code, "name": name, "main": True}]
        self.clock += timedelta(minutes=rng.randint(5, 40))
        encounter = {"id": f"OE{RUN}{self.uid}{self.seq}", "type": "outpatient", "med_type": med_type,
                     "department": department, "doctor_id": f"D{rng.randint(1, 300):03d}"}
        self.send(self.event(1, patient, encounter, self.clock))
        self.think()
        self.send(self.event(2, patient, encounter, self.clock + timedelta(minutes=15), dx, items),
                  expect="R03" if trigger else None)
        self.think()
        self.send(self.event(7, patient, encounter, self.clock + timedelta(minutes=20), dx, items))
        self.think()
        self.send(self.event(6, patient, encounter, self.clock + timedelta(minutes=21), dx, items))
        self.think()


class PharmacyPurchase(Hospital):
    """购药划卡 at a designated pharmacy; some patients come back too early for the same drug."""

    weight = 3

    @task
    def purchase(self) -> None:
        rng = self.rng
        patient = POPULATION.person(min_age=30)
        condition = rng.choices(CONDITIONS, weights=[c[3] for c in CONDITIONS])[0]
        drug = _pick_regimen(rng, [condition])[0]
        self.clock += timedelta(minutes=rng.randint(2, 30))
        encounter = {"id": f"PE{RUN}{self.uid}{self.seq}", "type": "pharmacy", "med_type": "41"}
        dx = [{"code": condition[0], "name": condition[1], "main": True}]
        self.send(self.event(10, patient, encounter, self.clock, dx, [_drug_line(1, drug, 7)]))
        self.think()
        if rng.random() < TRIGGER_SHARE * 2:
            # R19: the same ingredient again 2 days later, 5 of 7 days' supply left.
            again = rng.choice(BY_INGREDIENT[drug["ingredient"]])
            encounter = {"id": f"PE{RUN}{self.uid}{self.seq}b", "type": "pharmacy", "med_type": "41"}
            self.send(self.event(10, patient, encounter, self.clock + timedelta(days=2), dx, [_drug_line(1, again, 7)]),
                      expect="R19")
            self.think()


class InpatientStay(Hospital):
    """住院: admission → daily orders → pre-settlement → discharge settlement (some readmitted early)."""

    weight = 1

    def stay(self, patient: dict[str, Any], admitted: datetime, code: str, name: str, days: int,
             expect: str | None = None) -> datetime:
        rng = self.rng
        encounter: dict[str, Any] = {"id": f"IE{RUN}{self.uid}{self.seq}", "type": "inpatient", "med_type": "21",
                                     "department": rng.choice(DEPARTMENTS), "admitted_at": admitted.isoformat()}
        dx = [{"code": code, "name": name, "main": True}]
        self.send(self.event(3, patient, encounter, admitted, dx), expect=expect)
        self.think()
        regimen = _pick_regimen(rng, rng.sample(CONDITIONS, k=1))
        for day in range(1, days + 1):
            at = admitted + timedelta(days=day - 1, hours=2)
            items = [_service_line(1, "bed", at), _service_line(2, "ward_round", at)]
            items += [{**_drug_line(i + 3, d, 1), "started_at": at.isoformat()} for i, d in enumerate(regimen)]
            self.send(self.event(5, patient, encounter, at, dx, items))
            self.think()
        discharged = admitted + timedelta(days=days, hours=1)
        self.send(self.event(9, patient, encounter, discharged - timedelta(hours=1), dx))
        self.think()
        encounter = {**encounter, "discharged_at": discharged.isoformat()}
        self.send(self.event(8, patient, encounter, discharged, dx))
        self.think()
        return discharged

    @task
    def admission(self) -> None:
        rng = self.rng
        patient = POPULATION.person(min_age=20)
        code, name, related = rng.choice(INPATIENT_DX)
        admitted = self.clock + timedelta(hours=rng.randint(1, 6))
        discharged = self.stay(patient, admitted, code, name, rng.randint(3, 6))
        if related and rng.random() < TRIGGER_SHARE * 3:
            # R22: readmitted 5 days after discharge for a related diagnosis (分解住院).
            self.stay(patient, discharged + timedelta(days=5), related, name, 3, expect="R22")
        self.clock = discharged + timedelta(hours=1)


# -- the summary the capacity planner reads ------------------------------------------
@events.quitting.add_listener
def _summary(environment: Any, **_: Any) -> None:
    if REJECTED:
        print("\n" + REJECTED[0], flush=True)  # again, after Locust's own report
        environment.process_exit_code = 2
    stats = environment.stats
    total = stats.total
    if not total.num_requests and not total.num_failures:
        return
    ratio = total.num_failures / max(1, total.num_requests)
    lines = [
        "",
        "PreSettle load test summary",
        f"  requests {total.num_requests}, failures {total.num_failures} (failure ratio {ratio:.4f}), "
        f"{total.total_rps:.1f} req/s",
        f"  latency p50 {total.get_response_time_percentile(0.5):.0f} ms, "
        f"p95 {total.get_response_time_percentile(0.95):.0f} ms, "
        f"p99 {total.get_response_time_percentile(0.99):.0f} ms",
    ]
    for entry in sorted(stats.entries.values(), key=lambda e: e.name):
        if entry.num_requests:
            lines.append(f"    {entry.name:<44} n={entry.num_requests:<7} "
                         f"p50 {entry.get_response_time_percentile(0.5):>5.0f} "
                         f"p95 {entry.get_response_time_percentile(0.95):>5.0f} "
                         f"p99 {entry.get_response_time_percentile(0.99):>5.0f} ms  failures {entry.num_failures}")
    if SEEN_ALERTS:
        lines.append("  alerts seen per rule: " + ", ".join(f"{k} {v}" for k, v in sorted(SEEN_ALERTS.items())))
    if DESIGNED:
        lines.append("  designed triggers: " + ", ".join(f"{k} {v}" for k, v in sorted(DESIGNED.items())))
    print("\n".join(lines), flush=True)

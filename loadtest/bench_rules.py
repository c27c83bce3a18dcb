"""In-process benchmark of the rule engine on a synthetic, realistic event mix.

    python -m loadtest.bench_rules [--patients 2000] [--days 30] [--history 180] [--repeat 3] [--seed 7]

Patients (60 % chronic outpatients with monthly visits and pharmacy top-ups, 28 %
acute outpatients, 10 % inpatients with daily orders, 2 % dialysis patients)
get ``--history`` days of events, replayed through ``Engine.process`` untimed;
then the next ``--days`` days of events are timed on one core (best of
``--repeat`` passes, each from a copy of the warmed states). Events are
processed in time order across patients, each patient's state kept as a dict
(as between two events in the worker); a second timing adds the state codec
(``state.loads`` + ``state.dumps``) the worker pays per event. Rates are per
CPU second of this process (``time.process_time``), so another busy process on
the machine does not halve them; the wall-clock rate is reported beside.

Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson

from services.rules import decision as dec
from services.rules import state as st
from services.rules.engine import Engine

CST = timezone(timedelta(hours=8))
START = date(2025, 9, 1)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Catalog:
    """Codes picked from the loaded KB (so the bench follows the data)."""

    def __init__(self, engine: Engine) -> None:
        kb = engine.kb
        self.drugs: dict[str, list[dict[str, Any]]] = {}
        for ing, rows in kb.by_ingredient.items():
            self.drugs[ing] = [r for r in rows if r.get("effective_to") is None]
        self.svc = {r["name"]: r for r in kb.services.rows() if r.get("effective_to") is None}

    def drug(self, rnd: random.Random, ing: str, inpatient: bool = False) -> dict[str, Any]:
        rows = self.drugs[ing]
        if not inpatient:
            rows = [r for r in rows if r.get("settings") != ["inpatient"]] or rows
        selected = [r for r in rows if r.get("vbp_selected")]
        if selected and rnd.random() < 0.85:  # volume-procured products carry most of the volume
            return rnd.choice(selected)
        return rnd.choice(rows)

    def service(self, name: str) -> dict[str, Any]:
        return self.svc[name]


CHRONIC_SETS = [
    (("I10.x00", "高血压"), ["amlodipine", "valsartan", "atorvastatin", "aspirin", "metoprolol"]),
    (("E11.900", "2型糖尿病"), ["metformin", "acarbose", "sitagliptin", "atorvastatin", "gliclazide"]),
    (("I25.100", "冠心病"), ["aspirin", "clopidogrel", "rosuvastatin", "isosorbide_mononitrate", "bisoprolol"]),
    (("J44.900", "慢阻肺"), ["tiotropium", "salmeterol_fluticasone", "ambroxol"]),
    (("K21.000", "胃食管反流病"), ["omeprazole", "hydrotalcite", "domperidone"]),
]
ACUTE = [
    (("J06.900", "急性上呼吸道感染"), ["amoxicillin", "paracetamol", "loratadine"]),
    (("J20.900", "急性支气管炎"), ["cefuroxime", "ambroxol", "azithromycin"]),
    (("A09.900", "感染性腹泻"), ["montmorillonite", "levofloxacin"]),
    (("M54.500", "腰痛"), ["celecoxib", "loxoprofen"]),
    (("N39.000", "尿路感染"), ["levofloxacin", "cefixime"]),
]
STAYS = [
    (("J18.900", "肺炎"), ["ceftriaxone", "ambroxol", "levofloxacin"], 9),
    (("I63.900", "脑梗死"), ["edaravone", "aspirin", "atorvastatin", "ginkgo_extract"], 12),
    (("K35.800", "急性阑尾炎"), ["ceftriaxone", "metronidazole"], 6),
    (("I50.900", "心力衰竭"), ["furosemide", "spironolactone", "digoxin", "enalapril"], 10),
    (("E11.900", "2型糖尿病"), ["insulin_glargine", "insulin_aspart", "metformin"], 10),
]


class Gen:
    def __init__(self, engine: Engine, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.cat = Catalog(engine)
        self.n = 0

    def _t(self, day: int, hour: int, minute: int = 0) -> str:
        d = START + timedelta(days=day)
        return datetime(d.year, d.month, d.day, hour, minute, tzinfo=CST).isoformat()

    def _event(self, p: dict[str, Any], scene: int, day: int, hour: int, inst: str, enc: dict[str, Any],
               dx: list[tuple[str, str]], items: list[dict[str, Any]]) -> dict[str, Any]:
        self.n += 1
        return {
            "event_id": f"E{self.n:09d}", "scene": scene, "occurred_at": self._t(day, hour, self.rnd.randrange(60)),
            "institution": {"id": inst, "level": 3 if inst in ("H11010500001", "H11010800003") else 2, "region": "110100"},
            "patient": p, "encounter": enc,
            "diagnoses": [{"code": c, "name": n, "main": i == 0} for i, (c, n) in enumerate(dx)],
            "items": [dict(it, line_id=str(i + 1)) for i, it in enumerate(items)],
        }

    def _drug_line(self, ing: str, ds: int, day: int | None = None) -> dict[str, Any]:
        row = self.cat.drug(self.rnd, ing, inpatient=day is not None)
        daily = row.get("daily_qty") or 1
        qty = float(max(1, round(daily * ds)))
        cap = row.get("price_cap")
        price = round(cap * self.rnd.uniform(0.5, 1.0), 2) if cap else round(self.rnd.uniform(0.1, 5.0), 2)
        line = {"code": row["code"], "name": row["name"], "kind": "drug", "quantity": qty, "unit_price": price,
                "amount": round(qty * price, 2), "days_supply": ds}
        if day is not None:
            line["started_at"] = self._t(day, 8)
        return line

    def _svc_line(self, name: str, qty: float = 1.0, day: int | None = None) -> dict[str, Any]:
        row = self.cat.service(name)
        price = row.get("price_cap") or round(self.rnd.uniform(5, 200), 1)
        line = {"code": row["code"], "name": row["name"], "kind": row["kind"], "quantity": qty,
                "unit_price": price, "amount": round(qty * price, 2)}
        if day is not None:
            line["started_at"] = self._t(day, 9)
        return line

    def patient(self, pid: int, total_days: int) -> list[tuple[int, dict[str, Any]]]:
        rnd = self.rnd
        gender = rnd.choice("MF")
        birth = date(rnd.randint(1940, 2015), rnd.randint(1, 12), rnd.randint(1, 28))
        p = {"id": f"P{pid:07d}", "gender": gender, "birth_date": birth.isoformat(), "insurance_type": rnd.choice(["310", "390"]), "region": "110100"}
        home = rnd.choice(["H11010500001", "H11010800003", "H11010200007", "H11011300002"])
        kind = rnd.random()
        out: list[tuple[int, dict[str, Any]]] = []
        if kind < 0.02:   # dialysis, three sessions a week
            for day in (d for d in range(total_days) if (d + pid) % 7 in (0, 2, 4)):
                enc = {"id": f"{p['id']}-D{day}", "type": "outpatient", "med_type": "14"}
                items = [self._svc_line("血液透析"), self._svc_line("血液透析器"), self._svc_line("一次性使用血液透析管路")]
                if day % 14 == 0:
                    items.append(self._drug_line("epoetin_alfa", 14))
                dx = [("N18.500", "慢性肾脏病5期"), ("Z49.100", "体外透析")]
                out.append((day * 100 + 8, self._event(p, 2, day, 8, home, enc, dx, items)))
                out.append((day * 100 + 12, self._event(p, 6, day, 12, home, enc, dx, items)))
            return out
        chronic = kind < 0.62
        dx, ings = rnd.choice(CHRONIC_SETS)
        ings = rnd.sample(ings, k=min(len(ings), rnd.randint(2, 4)))
        day = rnd.randrange(25)
        while chronic and day < total_days:
            inst = home if rnd.random() < 0.8 else rnd.choice(["H11010200007", "H11011300002", "H11010800003"])
            enc = {"id": f"{p['id']}-O{day}", "type": "outpatient", "med_type": "14" if rnd.random() < 0.5 else "11", "department": "A03"}
            ds = 30 if enc["med_type"] == "14" else 14
            items = [self._svc_line("普通门诊诊查费")] + [self._drug_line(i, ds) for i in ings]
            if rnd.random() < 0.2:
                items += [self._svc_line("血细胞分析(血常规)"), self._svc_line("糖化血红蛋白测定")]
            out.append((day * 100 + 8, self._event(p, 1, day, 8, inst, enc, [dx], [self._svc_line("普通门诊挂号费")])))
            out.append((day * 100 + 9, self._event(p, 2, day, 9, inst, enc, [dx], items)))
            out.append((day * 100 + 10, self._event(p, 6, day, 10, inst, enc, [dx], items)))
            if rnd.random() < 0.3:  # a pharmacy top-up two weeks later
                pday = day + rnd.randint(12, 20)
                if pday < total_days:
                    penc = {"id": f"{p['id']}-R{pday}", "type": "pharmacy", "med_type": "41"}
                    out.append((pday * 100 + 15, self._event(p, 10, pday, 15, "P11010500901", penc, [], [self._drug_line(ings[0], 14)])))
            day += rnd.choice([28, 30, 30, 31, 35])
        if not chronic and kind < 0.90:   # acute outpatient
            for _ in range(rnd.randint(1, 4)):
                day = rnd.randrange(total_days)
                dx2, aings = rnd.choice(ACUTE)
                enc = {"id": f"{p['id']}-A{day}", "type": "outpatient", "med_type": "11", "department": "A03"}
                items = [self._svc_line("普通门诊诊查费")] + [self._drug_line(i, rnd.choice([3, 5, 7])) for i in aings[:2]]
                if rnd.random() < 0.5:
                    items.append(self._svc_line("C反应蛋白测定"))
                out.append((day * 100 + 9, self._event(p, 2, day, 9, home, enc, [dx2], items)))
                out.append((day * 100 + 10, self._event(p, 7, day, 10, home, enc, [dx2], items)))
                out.append((day * 100 + 11, self._event(p, 6, day, 11, home, enc, [dx2], items)))
        if not chronic and kind >= 0.90:   # inpatient stay(s)
            day = rnd.randrange(max(1, total_days - 20))
            while day < total_days:
                sdx, sings, los = rnd.choice(STAYS)
                los = max(2, los + rnd.randint(-3, 3))
                adm = self._t(day, 8)
                enc = {"id": f"{p['id']}-I{day}", "type": "inpatient", "med_type": "21", "admitted_at": adm, "department": "A03"}
                out.append((day * 100 + 8, self._event(p, 3, day, 8, home, enc, [sdx], [])))
                all_items: list[dict[str, Any]] = []
                for k in range(los):
                    dday = day + k
                    if dday >= total_days:
                        break
                    items = [self._svc_line("床位费(普通病房三人间)", day=dday), self._svc_line("Ⅱ级护理", day=dday),
                             self._svc_line("住院诊查费", day=dday)]
                    items += [self._drug_line(i, 1, day=dday) for i in sings[:3]]
                    if k == 0:
                        items += [self._svc_line("血细胞分析(血常规)", day=dday), self._svc_line("胸部CT平扫", day=dday)]
                    all_items += items
                    out.append((dday * 100 + 18, self._event(p, 5, dday, 18, home, dict(enc), [], items)))
                dis_day = day + los
                if dis_day < total_days:
                    denc = dict(enc, discharged_at=self._t(dis_day, 10))
                    out.append((dis_day * 100 + 9, self._event(p, 9, dis_day, 9, home, denc, [sdx], all_items[:40])))
                    out.append((dis_day * 100 + 10, self._event(p, 8, dis_day, 10, home, denc, [sdx], all_items[:40])))
                day = dis_day + rnd.randint(20, 200)
        return out


def percentile(values: list[int], q: float) -> int:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=2000)
    ap.add_argument("--history", type=int, default=180)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    engine = Engine.load()
    _progress(f"bench_rules: loaded {len(engine.rules)} rules in {time.perf_counter() - t0:.2f}s; generating {args.patients} patients")
    gen = Gen(engine, args.seed)
    total_days = args.history + args.days
    stream: list[tuple[int, int, dict[str, Any]]] = []
    for pid in range(args.patients):
        for key, ev in gen.patient(pid, total_days):
            stream.append((key, pid, ev))
    stream.sort(key=lambda x: (x[0], x[1]))
    split = args.history * 100
    history = [(pid, ev) for key, pid, ev in stream if key < split]
    timed = [(pid, ev) for key, pid, ev in stream if key >= split]
    _progress(f"bench_rules: {len(history)} history events, {len(timed)} timed events")

    # Validate a sample against the native model: the synthetic events are valid HTTP payloads.
    from services.contracts.event import Event
    for _, _, ev in stream[:: max(1, len(stream) // 200)]:
        Event.model_validate(ev)

    states: dict[int, dict[str, Any]] = {}
    for i, (pid, ev) in enumerate(history):
        states[pid], _ = engine.process(states.get(pid), ev)
        if i % 50000 == 0:
            _progress(f"bench_rules: history {i}/{len(history)}")
    sizes_hist = [len(st.dumps(s)) for s in states.values()]
    _progress(f"bench_rules: after {args.history} days: state bytes p50={percentile(sizes_hist, 0.5)} p99={percentile(sizes_hist, 0.99)}")
    frozen = {pid: st.dumps(s) for pid, s in states.items()}

    best = best_wall = float("inf")
    alerts_total = 0
    by_rule: dict[str, int] = {}
    final: dict[int, dict[str, Any]] = {}
    for r in range(args.repeat):
        work = {pid: st.loads(b) for pid, b in frozen.items()}
        process = engine.process
        n_alerts = 0
        counts: dict[str, int] = {}
        t = time.perf_counter()
        c = time.process_time()
        for pid, ev in timed:
            work[pid], alerts = process(work.get(pid), ev)
            if alerts:
                n_alerts += len(alerts)
                for a in alerts:
                    counts[a["rule_id"]] = counts.get(a["rule_id"], 0) + 1
        dt = time.perf_counter() - t
        cpu = time.process_time() - c
        best = min(best, cpu)
        best_wall = min(best_wall, dt)
        alerts_total, by_rule, final = n_alerts, counts, work
        _progress(f"bench_rules: pass {r + 1}/{args.repeat}: {len(timed) / cpu:,.0f} events/s (CPU time), {len(timed) / dt:,.0f} events/s (wall)")

    # The worker's per-event cost with the codec (loads + process + dumps).
    blobs = dict(frozen)
    loads, dumps, process = st.loads, st.dumps, engine.process
    c = time.process_time()
    for pid, ev in timed:
        new, _ = process(loads(blobs.get(pid)), ev)
        blobs[pid] = dumps(new)
    codec_dt = time.process_time() - c
    _progress(f"bench_rules: with state codec: {len(timed) / codec_dt:,.0f} events/s")

    # A machine yardstick, to compare runs on different hosts: µs for sum(range(1000)).
    import timeit
    yardstick = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000 * 1e6
    sizes = [len(st.dumps(s)) for s in final.values()]
    # What the changelog record weighs once the worker adds its idempotency records ("seen").
    with_seen = []
    for pid, s in final.items():
        s2 = orjson.loads(st.dumps(s))
        for k in range(3):
            dec.remember(s2, f"H11010500001:E{pid:09d}{k}", 1_780_000_000 + k, dec.decision_id_for("H1", f"E{pid}{k}"), [])
        with_seen.append(len(st.dumps(s2)))
    result = {
        "events_per_s": round(len(timed) / best),
        "events_per_s_wall": round(len(timed) / best_wall),
        "events_per_s_with_codec": round(len(timed) / codec_dt),
        "us_per_event": round(best / len(timed) * 1e6, 2),
        "events": len(timed),
        "patients": args.patients,
        "history_days": args.history,
        "rules": len(engine.rules),
        "alerts": alerts_total,
        "alerts_by_rule": dict(sorted(by_rule.items())),
        "state_bytes_p50": percentile(sizes, 0.5),
        "state_bytes_p99": percentile(sizes, 0.99),
        "state_bytes_max": max(sizes),
        "state_bytes_p50_with_3_seen": percentile(with_seen, 0.5),
        "python": sys.version.split()[0],
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "yardstick_sum_range_1000_us": round(yardstick, 2),
    }
    print(orjson.dumps(result).decode())
    return result


if __name__ == "__main__":
    main()

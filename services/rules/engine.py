"""The rule engine: KB + rule base compiled once, then evaluate/apply per event.

Pure: no clock, no network, no file I/O after ``Engine.load``. Event time is
the only clock (``occurred_at``; an item's ``started_at`` for its own dates).
"""

from __future__ import annotations

import importlib.resources
import pathlib
import string
from bisect import bisect_right
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from services.contracts.decision import STATIC_ALERT_KEYS
from services.rules import state as st
from services.rules.context import UNCOVERED, Ctx
from services.rules.exceptions import DataError
from services.rules.families.coverage import unchecked_entry
from services.rules.families.status import STATUS_EN, STATUS_ZH, status_affecting
from services.rules.kb import KB, tag_mask
from services.rules.ruleset import Rule, compile_rule_docs, compile_rules, parse_rule_file
from services.rules.timeutil import Memo, date_of_day, day_of_date, day_of_time


def packaged_data() -> pathlib.Path:
    """The rule base shipped in the package (``services/data``: ``kb/*.json``, ``rules/R*.json``)."""
    root = importlib.resources.files("services.data")
    if not isinstance(root, pathlib.Path):  # e.g. a zipped install: the loaders read real files
        raise DataError(f"the packaged rule base is not a directory on disk ({root}); set PRESETTLE_RULEBASE_DIR")
    return root


DEFAULT_DATA = packaged_data()


def _line_key(lid: str) -> tuple[int, int, str]:
    return (0, int(lid), "") if lid.isdigit() else (1, 0, lid)


def en_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields for an English message: a field ``x`` is replaced by ``x_en`` when the family
    fills one (names from the catalogue's English column, reasons in English)."""
    out = dict(fields)
    for key, value in fields.items():
        if key.endswith("_en"):
            out[key[:-3]] = value
    return out


Message = Callable[[dict[str, Any]], str]
_MESSAGES_ZH: dict[str, Message] = {}  # a message template → its compiled form (message_format)
_MESSAGES_EN: dict[str, Message] = {}  # the same for English templates (en_fields semantics)


def message_format(template: str, english: bool = False) -> Message:
    """``template.format_map`` compiled once into one f-string expression, so a template is parsed
    once and not at every alert. ``english``: ``en_fields(fields)`` is what is formatted, i.e. a
    field ``x`` takes the value of ``x_en`` when the fields have one. Templates name plain fields
    only (checked when rules load); any other template is formatted by ``format_map`` itself."""
    pieces = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if literal:
            pieces.append(repr(literal))  # a plain literal: its braces are text
        if name is None:
            continue
        if not name.isidentifier() or any(c in (spec or "") for c in '{}"\\'):
            return (lambda f: template.format_map(en_fields(f))) if english else template.format_map
        value = f"f[{name!r}]"
        if english:
            value = f"(f[{name + '_en'!r}] if {name + '_en'!r} in f else {value})"
        pieces.append('f"{' + value + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + '}"')
    fn: Message = eval("lambda f: " + (" ".join(pieces) or "''"), {})  # source built above from a parsed template
    return fn


def _message(cache: dict[str, Message], template: str, english: bool) -> Message:
    fn = cache[template] = message_format(template, english)
    if len(cache) > 10_000:  # rule bases replaced many times: keep the cache bounded
        cache.clear()
    return fn


def _sort_key(alert: dict[str, Any]) -> tuple[Any, ...]:
    lines = alert["line_ids"]
    return (alert["rule_id"], _line_key(lines[0]) if lines else (-1, 0, ""))


class Engine:
    def __init__(self, kb: KB, rules: list[Rule], honour_modes: bool = True) -> None:
        """``honour_modes=False`` evaluates every rule as active whatever its ``mode`` (the golden-case
        runner: a case checks the rule's logic, the mode is how a deployment uses it)."""
        self.kb = kb
        self.rules = rules
        self.honour_modes = honour_modes
        # Rules not evaluated (mode off), and rules whose alerts are shadow alerts (mode shadow).
        self._off = frozenset(r.id for r in rules if r.mode == "off") if honour_modes else frozenset()
        self._shadow = frozenset(r.id for r in rules if r.mode == "shadow") if honour_modes else frozenset()
        self.by_id = {r.id: r for r in rules}
        # What a recorded alert leaves out (STATIC_ALERT_KEYS: Rule attributes of the same names), per version.
        self._static = {(r.id, r.version): {k: getattr(r, k) for k in STATIC_ALERT_KEYS} for r in rules}
        self._plans: dict[tuple[int, str], tuple[tuple[Any, ...], ...]] = {}
        # Rules that can fire, per (scene, region, feature bits, date segment): see _run.
        self._runs: dict[tuple[int, str, int, int], tuple[tuple[Any, ...], ...]] = {}
        # Days where some rule's effective dates start or end (after the end): the rules in
        # force are the same for every day between two consecutive breaks.
        self._breaks = sorted({r.frm for r in rules} | {r.to + 1 for r in rules})
        # day → its date segment (the index of the break after it), remembered per day.
        self._segment_of: Callable[[int], int] = Memo(partial(bisect_right, self._breaks)).__getitem__
        self.windows = self._windows()
        for r in rules:  # alert skeletons and message templates made at load, not at a rule's first alert
            _alert_shape(r)

    def rule_static(self, rule_id: str, version: str) -> dict[str, Any]:
        """The fixed fields of a rule version's alerts ({} for a version no longer in the rule base)."""
        return self._static.get((rule_id, version), {})

    @classmethod
    def load(cls, data_dir: pathlib.Path | str | None = None) -> "Engine":
        """Load and validate ``<data_dir>/kb/*.json`` and ``<data_dir>/rules/R*.json`` (default: the packaged rule base)."""
        data_dir = pathlib.Path(data_dir) if data_dir is not None else DEFAULT_DATA
        if not data_dir.is_dir():
            raise DataError(f"{data_dir}: rule data directory not found")
        kb = KB.load(data_dir / "kb")
        rules = compile_rules(data_dir / "rules")
        return cls(kb, rules)

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], honour_modes: bool = True) -> "Engine":
        """Load and validate a bundle given as ``{relative path: JSON bytes}`` (``kb/<table>.json``,
        ``rules/R*.json``; services.rules.bundle), with the same checks as :meth:`load`."""
        kb = KB.from_bytes({rel[3:-5]: data for rel, data in files.items()
                            if rel.startswith("kb/") and rel.endswith(".json")})
        docs = [(rel[6:], parse_rule_file(rel, data)) for rel, data in sorted(files.items())
                if rel.startswith("rules/") and rel.endswith(".json")]
        return cls(kb, compile_rule_docs(docs), honour_modes)

    def with_modes(self, honour_modes: bool) -> "Engine":
        """The same KB and rules, honouring the rules' modes or not (cheap: nothing is loaded again)."""
        return self if honour_modes == self.honour_modes else Engine(self.kb, self.rules, honour_modes)

    def _windows(self) -> st.Windows:
        sections: dict[str, list[int]] = {}
        for rule in self.rules:
            for section, param in rule.family.windows.items():
                sections.setdefault(section, []).append(int(rule.param_max(param)))
        defaults = st.Windows()
        period_by_code: dict[str, int] = {}
        for r in self.kb.services.rows():
            if r.get("period_limit"):
                period_by_code[r["code"]] = max(period_by_code.get(r["code"], 0), r["period_limit"]["days"])
        tracked = frozenset(
            r["code"] for r in self.kb.services.rows()
            if r.get("max_per_day") or r.get("max_per_enc") or r.get("includes")
        ) | frozenset(c for r in self.kb.services.rows() for c in r.get("includes") or ())
        return st.Windows(
            ledger=max(sections.get("ledger", [defaults.ledger])),
            visits=max(sections.get("visits", [1])),
            stays=max(sections.get("stays", [1])),
            discharges=max(sections.get("discharges", [1])),
            open_stay=max(sections.get("open_stay", [defaults.open_stay])),
            period=max([*period_by_code.values(), 1]),
            period_by_code=period_by_code,
            course_gap=max(sections.get("course_gap", [defaults.course_gap])),
            tracked=tracked,
            first_line=self.kb.first_line_classes,
            passive=frozenset(self._state_param("idle_stay", "passive_categories", defaults.passive)),
            exam=frozenset(self._state_param("low_acuity", "exam_categories", defaults.exam)),
        )

    def _state_param(self, family: str, name: str, default: Any) -> Any:
        """The one value the rules of ``family`` give a state parameter (checked at load: they agree)."""
        for rule in self.rules:
            if rule.family.name == family:
                return rule.params[name]
        return default

    # -- per event -------------------------------------------------------------
    def context(self, state: dict[str, Any] | None, event: dict[str, Any], providers: Any = None) -> Ctx:
        return Ctx(self.kb, state if state is not None else {}, event, providers)

    def _plan(self, scene: int, region: str) -> tuple[tuple[Any, ...], ...]:
        """Rules to run at a scene for a region, with their parameters resolved (cached)."""
        key = (scene, region)
        plan = self._plans.get(key)
        if plan is None:
            entries = []
            for rule in self.rules:
                if scene in rule.scenes and rule.id not in self._off:
                    params, label = rule.resolve(region)
                    entries.append((rule, tag_mask(rule.needs), params, label))
            plan = tuple(entries)
            if len(self._plans) > 10_000:  # many distinct regions: keep the cache bounded
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _run(self, key: tuple[int, str, int, int], day: int) -> tuple[tuple[Any, ...], ...]:
        """The plan's rules whose needs the event's feature bits meet and that are in force on
        ``day`` (the same for every day of the date segment in ``key``), as (fn, params, rule, label)."""
        scene, region, fmask, _ = key
        run = tuple(
            (rule.fn, params, rule, label)
            for rule, needs, params, label in self._plan(scene, region)
            if needs & fmask == needs and rule.frm <= day <= rule.to
        )
        if len(self._runs) > 50_000:  # bounded: tag combinations × scenes × regions
            self._runs.clear()
        self._runs[key] = run
        return run

    def _evaluate(self, cx: Ctx) -> list[dict[str, Any]]:
        if cx.cancel is not None:
            return []  # a cancellation is not judged: it takes an earlier order back (state.apply_cancellation)
        alerts: list[dict[str, Any]] = []
        day = cx.day
        segment_of = self._segment_of
        seg = segment_of(day)
        key = (cx.scene, cx.region, cx.fmask, seg)
        run = self._runs.get(key)
        if run is None:
            run = self._run(key, day)
        if cx.dated:
            for line in cx.items:
                if line.start != day and segment_of(line.start) != seg:
                    # Some line's service date falls under other rule dates (a rule began or ended
                    # between it and the event): each line is judged by the rules in force on its date.
                    return self._evaluate_dated(cx)
        for fn, params, rule, label in run:
            hits = fn(cx, params)
            if hits:
                for fields, line_ids, amount, evidence in hits:
                    alerts.append(_alert(rule, label, fields, line_ids, amount, evidence))
        if len(alerts) > 1:
            alerts.sort(key=_sort_key)
        return alerts

    def _evaluate_dated(self, cx: Ctx) -> list[dict[str, Any]]:
        """The rare path of ``_evaluate``: the rules in force on the event's date or any line's date
        run; an alert keeps only the lines dated inside its rule's dates (and is dropped when none
        is left); an alert naming no line stands when its rule is in force on the event's date."""
        days = {cx.day} | {line.start for line in cx.items}
        runs: dict[str, tuple[Any, ...]] = {}
        for d in sorted(days):
            key = (cx.scene, cx.region, cx.fmask, self._segment_of(d))
            run = self._runs.get(key)
            if run is None:
                run = self._run(key, d)
            for entry in run:
                runs.setdefault(entry[2].id, entry)
        start = {line.lid: line.start for line in cx.items}
        alerts: list[dict[str, Any]] = []
        for fn, params, rule, label in runs.values():
            for fields, line_ids, amount, evidence in fn(cx, params) or ():
                if line_ids:
                    kept = [lid for lid in line_ids if rule.frm <= start.get(lid, cx.day) <= rule.to]
                    if not kept:
                        continue
                    if len(kept) < len(line_ids):
                        amt = {ln.lid: ln.amt for ln in cx.items}
                        amount = min(float(amount), sum(amt.get(lid, 0.0) for lid in kept))
                    line_ids = kept
                elif not rule.frm <= cx.day <= rule.to:
                    continue
                alerts.append(_alert(rule, label, fields, line_ids, amount, evidence))
        if len(alerts) > 1:
            alerts.sort(key=_sort_key)
        return alerts

    def _split(self, alerts: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(alerts for the HIS, shadow alerts): the latter are those of rules in mode ``shadow``."""
        if not self._shadow or not alerts:
            return alerts, []
        shadow = self._shadow
        return [a for a in alerts if a["rule_id"] not in shadow], [a for a in alerts if a["rule_id"] in shadow]

    def evaluate(self, state: dict[str, Any] | None, event: dict[str, Any],
                 providers: Any = None) -> list[dict[str, Any]]:
        return self._split(self._evaluate(self.context(state, event, providers)))[0]

    def apply(self, state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
        if state is None:
            state = {}
        return st.apply_event(state, Ctx(self.kb, state, event), self.windows)

    def process(self, state: dict[str, Any] | None, event: dict[str, Any],
                providers: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Evaluate rules against the PRIOR state, then apply the event. May mutate ``state``.
        ``providers``: the institution and doctor status timelines (services.rules.providers)."""
        if state is None:
            state = {}
        cx = Ctx(self.kb, state, event, providers)
        alerts = self._split(self._evaluate(cx))[0]
        return st.apply_event(state, cx, self.windows), alerts

    def evaluate_context(self, cx: Ctx) -> list[dict[str, Any]]:
        """The alerts for a context from :meth:`context` (as ``process`` evaluates them): a backtest
        evaluates one context under two rule sets that share the catalogue and the state windows."""
        return self._evaluate(cx)

    def apply_context(self, state: dict[str, Any], cx: Ctx) -> dict[str, Any]:
        """Apply the event of ``cx`` (built on ``state``) to ``state``, as ``process`` does after evaluating."""
        return st.apply_event(state, cx, self.windows)

    def decide(
        self, state: dict[str, Any] | None, event: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
        """``process`` plus the lines no catalogue rule could judge (see ``unchecked_lines``)."""
        new_state, alerts, unchecked, _ = self.decide_all(state, event)
        return new_state, alerts, unchecked

    def decide_all(
        self, state: dict[str, Any] | None, event: dict[str, Any], providers: Any = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        """``decide`` plus the shadow alerts (rules in mode ``shadow``: evaluated, never shown to the HIS)."""
        if state is None:
            state = {}
        cx = Ctx(self.kb, state, event, providers)
        alerts, shadow = self._split(self._evaluate(cx))
        unchecked = self._unchecked(cx) if cx.fmask & UNCOVERED and cx.cancel is None else []
        return st.apply_event(state, cx, self.windows), alerts, unchecked, shadow

    def _unchecked(self, cx: Ctx) -> list[dict[str, Any]]:
        return [unchecked_entry(self.kb, ln.lid, ln.code, ln.kind, ln.start) for ln in cx.items if ln.row is None]

    def unchecked_lines(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Lines of an event that no catalogue rule could judge: no catalogue row in force on the
        line's service date. Each: ``line_id, code, kind, service_date, reason`` (retired |
        not_yet_listed | not_listed | unmapped), ``left_catalogue_after`` (date or null), ``detail``."""
        if event.get("event_type") == "cancellation":
            return []
        day = day_of_time(event["occurred_at"])
        out = []
        for raw in event.get("items") or ():
            started = raw.get("started_at")
            d = day_of_time(started) if started else day
            code = raw["code"]
            if self.kb.item(code, raw["kind"], d) is None and (
                    "-" not in code or self.kb.item(code.split("-", 1)[0], raw["kind"], d) is None):
                out.append(unchecked_entry(self.kb, raw["line_id"], raw["code"], raw["kind"], d))
        return out

    def apply_status(self, state: dict[str, Any] | None, status: dict[str, Any]) -> dict[str, Any]:
        """Fold an insured-status update (see services.contracts.status.PatientStatus) into the state."""
        return st.apply_status(state if state is not None else {}, status)

    def retrospective(self, state: dict[str, Any] | None, status: dict[str, Any]) -> list[dict[str, Any]]:
        """事后 findings of a status recorded late: a death, a suspension (失信, 暂停联网结算) or an
        uninsured period whose days cover claims already in the patient's state (the state BEFORE
        ``status`` is applied) that no live decision could flag. A claim is judged as R31 judges it
        live (``status_affecting``): after the day of death (care up to and including it is
        payable), inside a suspended or uninsured period. A claim on a day the state already knew to
        be so was flagged live and is not repeated; one the new record does not decide (a newer
        update for the same period already did, a death decides the day) is left alone. Claims are
        what the state keeps with their event ids: supplies (the ledger), period-limited items,
        stay orders (the open-stay log), outpatient visits and admissions (a stay admitted inside
        the period, or open into it). One finding per earlier event:
        ``{event_id, institution_id, service_date, alerts: [R31 alert]}`` (the alert without ids)."""
        rule = self.by_id.get("R31")
        kind = status.get("status")
        if not state or rule is None or kind not in ("deceased", "suspended", "uninsured") or "R31" in self._off:
            return []
        params, label = rule.resolve("default")
        if kind not in params["statuses"]:
            return []
        # The timeline with the new record (S is rebuilt, not mutated: the prior state is untouched; without
        # ``d`` so a period that ended before the newest event is kept: it is exactly the late case).
        after = st.apply_status({k: v for k, v in state.items() if k != "d"}, status)
        frm = day_of_date(status["effective_from"])
        to = day_of_date(status["effective_to"]) if status.get("effective_to") else None
        first_day = frm + 1 if kind == "deceased" else frm  # the first day the record makes unpayable
        affecting = status_affecting
        wanted: dict[str, tuple[str, int, list[dict[str, Any]]]] = {}

        def claim(event_id: str | None, inst: str, day: int, evidence: dict[str, Any], only_new: bool = False) -> None:
            if not event_id or day < first_day or (to is not None and day > to) or not rule.frm <= day <= rule.to:
                return
            if only_new and event_id in wanted:
                return
            now = affecting(after, day)
            if now is None or now[st.S_STATUS] != kind or now[st.S_FROM] != frm:
                return  # the new record does not decide this day
            was = affecting(state, day)
            if was is not None and was[st.S_STATUS] in params["statuses"]:
                return  # already known on that day: flagged live
            got = wanted.setdefault(event_id, (inst, day, []))
            got[2].append(evidence)

        def item(event_id: str, inst: str, day: int, code: str, name: str, qty: Any, days: Any, amount: Any) -> dict[str, Any]:
            return {"kind": "event", "event_id": event_id, "institution_id": inst, "date": date_of_day(day),
                    "item_code": code, "item_name": name, "quantity": qty, "days_supply": days, "amount": amount}

        for r in [row for held in state.get("L", ()) for row in (held, *st.past_rows(held))]:
            kb_row = self.kb.drugs.get(r[st.L_CODE], r[st.L_START])
            claim(r[st.L_EVENT], r[st.L_INST], r[st.L_START], item(
                r[st.L_EVENT], r[st.L_INST], r[st.L_START], r[st.L_CODE], kb_row["name"] if kb_row else r[st.L_CODE],
                r[st.L_QTY], r[st.L_DAYS], st.amount_of(r)))
        for r in state.get("P", ()):
            if len(r) > st.P_EVENT:
                kb_row = self.kb.services.get(r[st.P_CODE], r[st.P_DAY])
                claim(r[st.P_EVENT], r[st.P_INST], r[st.P_DAY], item(
                    r[st.P_EVENT], r[st.P_INST], r[st.P_DAY], r[st.P_CODE], kb_row["name"] if kb_row else r[st.P_CODE],
                    r[st.P_QTY], None, r[st.P_AMT] if len(r) > st.P_AMT else None))
        stays = {a[st.A_ENC]: a for a in state.get("A", ())}
        for w in state.get("E", ()):
            a = stays.get(w[st.E_ENC])
            if a is None or len(w) <= st.E_LOG:
                continue
            for entry in w[st.E_LOG]:
                for it in entry[1:]:
                    code, start = it[st.I_CODE], it[st.I_START]
                    kb_row = self.kb.services.get(code, start) or self.kb.drugs.get(code, start)
                    claim(entry[0], a[st.A_INST], start, item(entry[0], a[st.A_INST], start, code,
                                                              kb_row["name"] if kb_row else code, it[st.I_QTY], None, it[st.I_AMT]))
        for v in state.get("V", ()):
            if len(v) > st.V_EVENT:
                claim(v[st.V_EVENT], v[st.V_INST], v[st.V_DAY], {
                    "kind": "event", "event_id": v[st.V_EVENT], "institution_id": v[st.V_INST],
                    "date": date_of_day(v[st.V_DAY]), "visit": "outpatient"}, only_new=True)
        newest = state.get("d")
        for a in state.get("A", ()):
            adm, dis = a[st.A_ADM], a[st.A_DIS]
            day = max(adm, first_day)
            if day > (dis if dis is not None else (newest if newest is not None else adm)):
                continue  # discharged before the period, or not yet in it
            dx = self.kb.diagnosis(a[st.A_DX], adm) if a[st.A_DX] else None
            claim(a[st.A_EVENT], a[st.A_INST], day, {
                "kind": "event", "event_id": a[st.A_EVENT], "institution_id": a[st.A_INST],
                "date": date_of_day(adm), "admitted_on": date_of_day(adm),
                "discharged_on": date_of_day(dis) if dis is not None else None,
                "diagnosis_code": a[st.A_DX], "diagnosis_name": dx["name"] if dx else a[st.A_DX]})
        if not wanted:
            return []
        reason = status.get("reason") or None
        since = date_of_day(frm)
        fields = {"status_zh": STATUS_ZH[kind], "status_en": STATUS_EN[kind], "since": since, "reason": reason or "-"}
        until = f" to {date_of_day(to)}" if to is not None else ""
        detail = (f"{kind} from {since}{until}" + (f"; reason: {reason}" if reason else "")
                  + "; recorded after these claims (retrospective)")
        if kind == "deceased":
            detail += "; care up to and including the day of death is payable"
        out = []
        for event_id, (inst, day, evidence) in sorted(wanted.items(), key=lambda kv: (kv[1][1], kv[0])):
            ev = [*evidence, {"kind": "kb", "table": "patient_status", "code": kind, "detail": detail}]
            amount = sum(e["amount"] for e in evidence if e.get("amount"))
            out.append({"event_id": event_id, "institution_id": inst, "service_date": date_of_day(day),
                        "alerts": [_alert(rule, label, fields, [], amount, ev)]})
        return out

    def alert_of(self, rule_id: str, region: str | None, day: int, fields: dict[str, Any],
                 evidence: list[dict[str, Any]], amount: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """One alert of a rule composed outside an event (a retrospective finding the decision log
        writes: services.decisionlog.retro) and the parameters it was judged with (the region's), or
        None when the rule is absent, off, or not in force on ``day``."""
        rule = self.by_id.get(rule_id)
        if rule is None or rule_id in self._off or not rule.frm <= day <= rule.to:
            return None
        params, label = rule.resolve(region or "default")
        return _alert(rule, label, fields, [], amount, evidence), params

    # -- catalogue and search ----------------------------------------------------
    def rules_catalog(self) -> list[dict[str, Any]]:
        return [r.catalog() for r in self.rules]

    def search_items(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        return self.kb.search_items(q, limit) if q.strip() else []

    def search_diagnoses(self, q: str, limit: int = 20) -> list[dict[str, Any]]:
        return self.kb.search_diagnoses(q, limit) if q.strip() else []


def _alert_shape(rule: Any) -> tuple[dict[str, Any], Message, Message]:
    """A rule's alert skeleton (its fixed fields, every key in the alert's order) and its compiled
    messages, made once per rule (``_alert`` copies the skeleton and fills in the rest)."""
    zh, en = rule.msg_zh, rule.msg_en
    fixed = {
        "rule_id": rule.id, "rule_version": rule.version, "gz_code": rule.gz_code,
        "name_zh": rule.name_zh, "name_en": rule.name_en,
        "result_type": rule.result_type, "indicator": rule.indicator,
        "severity": rule.severity,
        "message_zh": "", "message_en": "", "line_ids": [], "amount": 0.0,
        "evidence": [], "policy_basis": rule.policy_basis, "region": "default",
    }
    shape = (fixed, _MESSAGES_ZH.get(zh) or _message(_MESSAGES_ZH, zh, False),
             _MESSAGES_EN.get(en) or _message(_MESSAGES_EN, en, True))
    if len(_ALERT_SHAPES) > 10_000:  # rule bases replaced many times: keep the cache bounded
        _ALERT_SHAPES.clear()
    _ALERT_SHAPES[rule] = shape
    return shape


_ALERT_SHAPES: dict[Any, tuple[dict[str, Any], Message, Message]] = {}  # rule → _alert_shape(rule)


def _alert(rule: Any, label: Any, fields: dict[str, Any], line_ids: Any, amount: Any, evidence: Any) -> dict[str, Any]:
    """One alert of ``rule`` from a family's hit (the dated and undated paths of ``_evaluate`` alike)."""
    fixed, message_zh, message_en = _ALERT_SHAPES.get(rule) or _alert_shape(rule)
    alert = fixed.copy()
    alert["message_zh"] = message_zh(fields)
    alert["message_en"] = message_en(fields)
    alert["line_ids"] = line_ids
    alert["amount"] = round(float(amount), 2)
    alert["evidence"] = evidence
    alert["region"] = label
    return alert

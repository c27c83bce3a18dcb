"""The backtest comparison: native events in event-time order through a baseline and a candidate bundle.

Each side starts from empty per-patient state and runs the worker's engine code (``Engine``:
evaluate the rules against the prior state, then apply the event), so a side's alerts are the
ones the worker would have given had that bundle been active for the whole replay. A retried
event (same institution and event id) is applied once, as the worker's idempotency record does.

Two ways to run the pair, chosen by :func:`plan`; both give the same report:

* **shared state** — when the two bundles have the same catalogues (``kb/``) and the same state
  windows (``Engine.windows``: how long each state section is kept), the per-patient state
  evolves identically on both sides, because applying an event reads only the catalogue rows
  and the windows. The state is then kept once and each event's context built once; on it run
  the *changed* rules (added, removed or with a different entry) of both sides — and with
  ``all_rules`` every baseline rule, to count the unchanged ones too, which give the same alerts
  on both sides (same context, same entry). A threshold change then costs less than one replay.
* **independent** — otherwise (or when asked): two engines, two states, every rule on both.

Alerts are matched per event by ``(rule_id, line_ids)``: an alert on the same lines is the same
alert even when its message or amount changed (amounts are summed per side); one only on the
candidate side is *gained*, one only on the baseline side *lost*. ``patients`` and
``institutions`` count those with a gained or lost alert of the rule (who the change touches).

Pure apart from :func:`load_side` reading a bundle directory: no clock, no network. Patient ids
never reach the report in clear: examples carry what ``pseudonym`` makes of them (nothing
without one).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from services.rules import bundle
from services.rules.engine import DEFAULT_DATA, Engine
from services.rules.timeutil import date_of_day, day_of_time

#: Examples kept per rule and in all (the report stays readable and small).
EXAMPLES_PER_RULE = 5
EXAMPLES_MAX = 100
#: How often (events) the progress callback is called.
PROGRESS_EVERY = 5000

Progress = Callable[[int], None]


class History(dict[str, Any]):
    """An event to merge into the patient's history without evaluating rules (the NHSA dialects'
    earlier encounters, flagged ``history`` on the events topic), as the worker does."""


@dataclass(frozen=True)
class Side:
    """One bundle, loaded: its engine, revision id, a digest of its catalogues, where it came from."""

    engine: Engine
    revision: str
    kb_digest: str
    source: str


def load_side(data_dir: pathlib.Path | str | None) -> Side:
    """Load a bundle directory (``rules/``, ``kb/``; None: the packaged rule base) with the worker's loader."""
    path = pathlib.Path(data_dir) if data_dir is not None else DEFAULT_DATA
    engine = Engine.load(path)
    files = bundle.bundle_files(path)
    kb_files = [(rel, data) for rel, data in files if rel.startswith("kb/")]
    source = "packaged" if data_dir is None else str(path)
    return Side(engine, bundle.revision_of_files(files), bundle.revision_of_files(kb_files), source)


def _rule_key(rule: Any) -> bytes:
    return orjson.dumps(rule.entry, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class Plan:
    """How the pair runs: ``changed`` rule ids (added, removed or edited); ``shared`` state or not."""

    changed: tuple[str, ...]
    shared: bool
    why_independent: str | None = None


def plan(baseline: Side, candidate: Side, independent: bool = False) -> Plan:
    b_rules = {r.id: r for r in baseline.engine.rules}
    c_rules = {r.id: r for r in candidate.engine.rules}
    changed = tuple(sorted(
        rid for rid in b_rules.keys() | c_rules.keys()
        if rid not in b_rules or rid not in c_rules or _rule_key(b_rules[rid]) != _rule_key(c_rules[rid])))
    why = None
    if independent:
        why = "asked for (--independent)"
    elif baseline.kb_digest != candidate.kb_digest:
        why = "the catalogues (kb/) differ"
    elif baseline.engine.windows != candidate.engine.windows:
        why = "the state windows differ (a rule parameter that sets how long state is kept changed)"
    return Plan(changed, why is None, why)


@dataclass
class RuleStats:
    baseline: int = 0
    candidate: int = 0
    gained: int = 0
    lost: int = 0
    amount_baseline: float = 0.0
    amount_candidate: float = 0.0
    patients: set[str] = field(default_factory=set)
    institutions: set[str] = field(default_factory=set)
    by_day: dict[int, list[int]] = field(default_factory=dict)  # epoch day → [baseline, candidate]
    examples: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline, "candidate": self.candidate, "gained": self.gained, "lost": self.lost,
            "patients": len(self.patients), "institutions": len(self.institutions),
            "amount_baseline": round(self.amount_baseline, 2), "amount_candidate": round(self.amount_candidate, 2),
            "by_day": [[date_of_day(d), bc[0], bc[1]] for d, bc in sorted(self.by_day.items())],
        }


def _brief(alert: dict[str, Any]) -> dict[str, Any]:
    return {"line_ids": alert["line_ids"], "amount": alert["amount"], "message_zh": alert["message_zh"],
            "message_en": alert["message_en"]}


def event_time(event: dict[str, Any]) -> float:
    """The event's time as epoch seconds (the replay's sort key)."""
    return datetime.fromisoformat(event["occurred_at"]).timestamp()


def in_event_time_order(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted by ``occurred_at``; events at the same instant keep their input order."""
    keyed = [(event_time(ev), i, ev) for i, ev in enumerate(events)]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [ev for _, _, ev in keyed]


class Backtest:
    """Feed events (already in event-time order) with :meth:`run`; read :meth:`report`."""

    def __init__(self, baseline: Side, candidate: Side, independent: bool = False,
                 pseudonym: Callable[[str], str] | None = None, all_rules: bool = False,
                 examples_per_rule: int = EXAMPLES_PER_RULE, examples_max: int = EXAMPLES_MAX) -> None:
        self.baseline = baseline
        self.candidate = candidate
        self.plan = plan(baseline, candidate, independent)
        self.pseudonym = pseudonym
        self.examples_per_rule = examples_per_rule
        self.examples_max = examples_max
        self.changed = frozenset(self.plan.changed)
        self.all_rules = all_rules or not self.plan.shared
        # Shared state: the baseline's rules (all, or only the changed ones) and the candidate's
        # changed rules, each run on the one context per event.
        kb = baseline.engine.kb
        b_rules = {r.id: r for r in baseline.engine.rules}
        c_rules = {r.id: r for r in candidate.engine.rules}
        self.base_eval = baseline.engine if self.all_rules else Engine(
            kb, [b_rules[rid] for rid in self.plan.changed if rid in b_rules])
        self.cand_eval = Engine(kb, [c_rules[rid] for rid in self.plan.changed if rid in c_rules])
        self.base_scenes = frozenset(scene for r in self.base_eval.rules for scene in r.scenes)
        self.cand_scenes = frozenset(scene for r in self.cand_eval.rules for scene in r.scenes)
        counted = (*baseline.engine.rules, *candidate.engine.rules) if self.all_rules else (
            *self.base_eval.rules, *self.cand_eval.rules)
        self.stats: dict[str, RuleStats] = {r.id: RuleStats() for r in counted}
        self.states_b: dict[str, dict[str, Any]] = {}
        self.states_c: dict[str, dict[str, Any]] = {}
        self.seen: set[tuple[str, str]] = set()  # (institution, event id): the worker's idempotency key
        self.events = 0
        self.duplicates = 0
        self.history = 0  # History events applied (not evaluated, not counted in events)
        self.examples: list[dict[str, Any]] = []
        self.first: str | None = None
        self.last: str | None = None

    # -- the replay ------------------------------------------------------------------
    def run(self, events: Iterable[dict[str, Any]], progress: Progress | None = None,
            every: int = PROGRESS_EVERY) -> None:
        step = self._step_shared if self.plan.shared else self._step_independent
        n = done = 0
        seen = self.seen
        for event in events:
            done += 1
            if progress is not None and done % every == 0:
                progress(done)  # records read (events, retries, history)
            key = (event["institution"]["id"], event["event_id"])
            if key in seen:
                self.duplicates += 1  # a retry: the worker answers it from its idempotency record
                continue
            seen.add(key)
            if type(event) is History:
                self._history(event)
                self.history += 1
                continue
            step(event)
            n += 1
            if self.first is None:
                self.first = event["occurred_at"]
            self.last = event["occurred_at"]
        self.events += n
        if progress is not None:
            progress(done)

    def _history(self, event: dict[str, Any]) -> None:
        pid = event["patient"]["id"]
        if self.plan.shared:
            state = self.states_b.setdefault(pid, {})
            engine = self.baseline.engine
            engine.apply_context(state, engine.context(state, event))
        else:
            self.states_b[pid] = self.baseline.engine.apply(self.states_b.get(pid), event)
            self.states_c[pid] = self.candidate.engine.apply(self.states_c.get(pid), event)

    def _step_shared(self, event: dict[str, Any]) -> None:
        engine = self.baseline.engine
        pid = event["patient"]["id"]
        state = self.states_b.get(pid)
        if state is None:
            state = self.states_b[pid] = {}
        cx = engine.context(state, event)
        scene = cx.scene
        base = self.base_eval.evaluate_context(cx) if scene in self.base_scenes else ()
        delta = self.cand_eval.evaluate_context(cx) if scene in self.cand_scenes else ()
        engine.apply_context(state, cx)
        if not base and not delta:
            return
        changed = self.changed
        day = cx.day
        stats = self.stats
        b_changed: list[dict[str, Any]] = []
        for a in base:
            rid = a["rule_id"]
            s = stats[rid]
            s.baseline += 1
            s.amount_baseline += a["amount"]
            counts = s.by_day.get(day)
            if counts is None:
                counts = s.by_day[day] = [0, 0]
            counts[0] += 1
            if rid in changed:
                b_changed.append(a)
            else:  # the candidate's copy of this rule is the same rule: the same alert
                s.candidate += 1
                s.amount_candidate += a["amount"]
                counts[1] += 1
        for a in delta:
            self._count_candidate(a, day)
        if b_changed or delta:
            self._diff(event, b_changed, delta)

    def _step_independent(self, event: dict[str, Any]) -> None:
        pid = event["patient"]["id"]
        self.states_b[pid], base = self.baseline.engine.process(self.states_b.get(pid), event)
        self.states_c[pid], cand = self.candidate.engine.process(self.states_c.get(pid), event)
        if not base and not cand:
            return
        day = day_of_time(event["occurred_at"])
        for a in base:
            s = self.stats[a["rule_id"]]
            s.baseline += 1
            s.amount_baseline += a["amount"]
            counts = s.by_day.get(day)
            if counts is None:
                counts = s.by_day[day] = [0, 0]
            counts[0] += 1
        for a in cand:
            self._count_candidate(a, day)
        self._diff(event, base, cand)

    def _count_candidate(self, a: dict[str, Any], day: int) -> None:
        s = self.stats[a["rule_id"]]
        s.candidate += 1
        s.amount_candidate += a["amount"]
        counts = s.by_day.get(day)
        if counts is None:
            counts = s.by_day[day] = [0, 0]
        counts[1] += 1

    def _diff(self, event: dict[str, Any], base: Sequence[dict[str, Any]], cand: Sequence[dict[str, Any]]) -> None:
        """Gained and lost alerts of one event, matched by (rule_id, line_ids)."""
        left: dict[tuple[str, tuple[str, ...]], int] = {}
        for a in base:
            k = (a["rule_id"], tuple(a["line_ids"]))
            left[k] = left.get(k, 0) + 1
        gained: list[dict[str, Any]] = []
        for a in cand:
            k = (a["rule_id"], tuple(a["line_ids"]))
            if left.get(k):
                left[k] -= 1
            else:
                gained.append(a)
        if not gained and not any(left.values()):
            return
        lost: list[dict[str, Any]] = []
        for a in base:
            k = (a["rule_id"], tuple(a["line_ids"]))
            if left.get(k):
                left[k] -= 1
                lost.append(a)
        pid = event["patient"]["id"]
        inst = event["institution"]["id"]
        for change, alerts in (("gained", gained), ("lost", lost)):
            for a in alerts:
                s = self.stats[a["rule_id"]]
                if change == "gained":
                    s.gained += 1
                else:
                    s.lost += 1
                s.patients.add(pid)
                s.institutions.add(inst)
                if s.examples < self.examples_per_rule and len(self.examples) < self.examples_max:
                    s.examples += 1
                    self.examples.append(self._example(event, a, change, base, cand))

    def _example(self, event: dict[str, Any], alert: dict[str, Any], change: str,
                 base: Sequence[dict[str, Any]], cand: Sequence[dict[str, Any]]) -> dict[str, Any]:
        rid = alert["rule_id"]
        named = set(alert["line_ids"])
        return {
            "rule_id": rid, "change": change, "event_id": event["event_id"],
            "institution": event["institution"]["id"],
            "patient": self.pseudonym(event["patient"]["id"]) if self.pseudonym else None,
            "occurred_at": event["occurred_at"], "scene": event["scene"],
            "lines": [{k: it.get(k) for k in ("line_id", "code", "name", "kind", "quantity", "days_supply", "amount")}
                      for it in event.get("items") or () if it["line_id"] in named],
            "baseline": [_brief(a) for a in base if a["rule_id"] == rid],
            "candidate": [_brief(a) for a in cand if a["rule_id"] == rid],
        }

    # -- the report ------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        names = {r.id: (r.name_zh, r.name_en) for r in (*self.baseline.engine.rules, *self.candidate.engine.rules)}
        rules = {}
        for rid in sorted(self.stats):
            entry = self.stats[rid].public()
            entry["name_zh"], entry["name_en"] = names[rid]
            entry["changed"] = rid in self.changed
            rules[rid] = entry
        return {
            "events": self.events,
            "duplicates": self.duplicates,
            "history": self.history,
            "baseline_revision": self.baseline.revision,
            "candidate_revision": self.candidate.revision,
            "baseline": self.baseline.source,
            "candidate": self.candidate.source,
            "mode": "shared-state" if self.plan.shared else "independent",
            "independent_because": self.plan.why_independent,
            "changed_rules": list(self.plan.changed),
            "counted": "all rules" if self.all_rules else "changed rules (the others give the same alerts on "
                                                         "both sides: same state, same rule entry)",
            "first_event_at": self.first,
            "last_event_at": self.last,
            "patients": len(self.states_b) if self.plan.shared else len(self.states_b.keys() | self.states_c.keys()),
            "rules": rules,
            "examples": self.examples,
        }

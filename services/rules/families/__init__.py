"""Rule families: one small pure function per family of rules.

A family function is called as ``fn(cx, p)`` with the event context
(:class:`services.rules.context.Ctx`, whose ``state`` is the PRIOR patient
state) and the rule's parameters for the event's region. It returns a list of
hits ``(fields, line_ids, amount, evidence)``: ``fields`` fill the rule's
message templates, ``line_ids`` name the offending lines, ``amount`` is the
money at stake and ``evidence`` the earlier events or KB rows that decided.

Register a family with :func:`family`; a rule entry names it in ``"family"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from services.rules.timeutil import date_of_day

Hit = tuple[dict[str, Any], list[str], float, list[dict[str, Any]]]
FamilyFn = Callable[[Any, dict[str, Any]], list[Hit]]


@dataclass(frozen=True)
class Family:
    name: str
    fn: FamilyFn
    params: dict[str, type | tuple[type, ...]]   # parameter name → type(s); every one needs a default
    fields: frozenset[str]                       # message template fields the hits fill
    needs: tuple[str, ...]                       # context tags (Ctx.features) all required; else skipped
    windows: dict[str, str]                      # state section → parameter (days) it must keep
    state_params: tuple[str, ...] = ()           # parameters that shape the patient state (one value)


FAMILIES: dict[str, Family] = {}


def family(
    name: str,
    *,
    params: dict[str, type | tuple[type, ...]],
    fields: tuple[str, ...],
    needs: str | tuple[str, ...] = (),
    windows: dict[str, str] | None = None,
    state_params: tuple[str, ...] = (),
) -> Callable[[FamilyFn], FamilyFn]:
    """Register a family. ``state_params`` name parameters the state arithmetic applies when it
    records an event (not when a rule evaluates): every rule of the family must give them the
    same value, and no region may override them (the state holds one accumulation)."""

    def register(fn: FamilyFn) -> FamilyFn:
        if name in FAMILIES:
            raise RuntimeError(f"rule family {name!r} registered twice")
        if set(state_params) - set(params):
            raise RuntimeError(f"rule family {name!r}: state_params not among its params")
        tags = (needs,) if isinstance(needs, str) else tuple(needs)
        FAMILIES[name] = Family(name, fn, params, frozenset(fields), tags, windows or {}, tuple(state_params))
        return fn

    return register


def ev_item(cx: Any, line: Any, *, date: str | None = None) -> dict[str, Any]:
    """Evidence entry for a line of the current event."""
    return {
        "kind": "event", "event_id": cx.event_id, "institution_id": cx.inst,
        "date": date or (cx.date if line.start == cx.day else date_of_day(line.start)), "item_code": line.code, "item_name": line.name,
        "quantity": line.qty, "days_supply": line.ds, "amount": round(float(line.amt), 2),
    }


def kb_ev(table: str, code: str, detail: str) -> dict[str, Any]:
    return {"kind": "kb", "table": table, "code": code, "detail": detail}


def names(lines: Any) -> str:
    return "、".join(f"{ln.name}" for ln in lines)


def names_en(lines: Any) -> str:
    return ", ".join(ln.name_en for ln in lines)


def load_all() -> None:
    """Import every family module (registration happens at import)."""
    from services.rules.families import (  # noqa: F401
        admissions,
        catalog,
        charges,
        coverage,
        diagnosis,
        provider,
        status,
        supply,
        visits,
    )

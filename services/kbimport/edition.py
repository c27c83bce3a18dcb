"""A new catalogue edition from an imported code table: the merge and its diff.

Rows are dated and never deleted (services/rules/kb.py). With the edition's effective date E:

* **added** — a code the current edition does not have: a new row from E (``Layout.complete``
  fills what the catalogue needs beyond the national attributes);
* **re-listed** — a code whose rows all ended before E: a new row from E that carries our
  attributes from its last row;
* **changed** — a code whose row in force on E differs in a national attribute: that row ends on
  E − 1 and a new row from E carries the new national attributes *and every attribute of ours*
  (limits, flags, indications, English name, ingredient, category); its ``note`` (which
  describes one version) is not carried. A row that itself starts on E is amended in place;
* **retired** — (a full edition only, not ``increment``) a code in the table's scope that the
  import does not list: its row in force on E ends on E − 1;
* everything else is left as it is, rows outside the table's scope included (an import of the
  drug table does not touch decoction pieces; consumables and services share one file).

A code with a row starting after E is a conflict (editions are imported in date order), and so
is a code that belongs to another scope of the same file (a service code already filed as a
consumable). Pure: rows in, rows and the diff out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.kbimport.layouts import Derived, Layout, Related
from services.rules.timeutil import NEVER, date_of_day, day_of_date


class EditionError(ValueError):
    """The import does not fit the current edition (the message lists the conflicting codes)."""


@dataclass
class Diff:
    added: list[dict[str, Any]] = field(default_factory=list)
    relisted: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    retired: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    derived: Derived = field(default_factory=Derived)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "relisted": len(self.relisted), "changed": len(self.changed),
                "retired": len(self.retired), "unchanged": self.unchanged}

    def public(self) -> dict[str, Any]:
        return {"counts": self.counts(), "added": self.added, "relisted": self.relisted, "changed": self.changed,
                "retired": self.retired, "made_up_for_new_codes": self.derived.public()}


def _span(row: dict[str, Any]) -> tuple[int, int]:
    frm = day_of_date(row["effective_from"])
    to = day_of_date(row["effective_to"]) if row.get("effective_to") else NEVER
    return frm, to


def merge(layout: Layout, current: list[dict[str, Any]], imported: dict[str, tuple[int, dict[str, Any]]],
          effective: str, full: bool = True) -> tuple[list[dict[str, Any]], Diff]:
    """The table's rows for the new edition and what changed. ``imported``: code → (row number, national attributes)."""
    e_day = day_of_date(effective)
    day_before = date_of_day(e_day - 1)
    rows = [dict(r) for r in current]
    in_scope: dict[str, list[int]] = {}
    other_scope: set[str] = set()
    for i, r in enumerate(rows):
        code = r.get("code")
        if code is None:
            continue
        if layout.in_scope(r):
            in_scope.setdefault(code, []).append(i)
        else:
            other_scope.add(code)
    related = Related([r for r in rows if layout.in_scope(r)])
    diff = Diff()
    conflicts: list[str] = []
    after: dict[int, dict[str, Any]] = {}
    appended: list[dict[str, Any]] = []

    for code, (number, nat) in imported.items():
        idxs = in_scope.get(code, [])
        if not idxs and code in other_scope:
            conflicts.append(f"row {number}: {code} is already in {layout.table}.json outside the "
                             f"{layout.title} rows (another kind of row with this code)")
            continue
        later = [i for i in idxs if _span(rows[i])[0] > e_day]
        if later:
            conflicts.append(f"row {number}: {code} has a row from {rows[later[0]]['effective_from']}, after this "
                             f"edition's date {effective} (import editions in date order)")
            continue
        cur = next((i for i in idxs if _span(rows[i])[0] <= e_day <= _span(rows[i])[1]), None)
        if cur is None:
            if idxs:  # listed before, retired since: back, with our attributes from its last row
                last = rows[max(idxs, key=lambda i: _span(rows[i])[0])]
                new = {k: v for k, v in last.items() if k not in ("effective_to", "note")}
                new.update({f: nat[f] for f in layout.national if f in nat})
                new["effective_from"] = effective
                diff.relisted.append({"code": code, "name": new["name"], "row": number})
            else:
                new = layout.complete(code, nat, related, diff.derived)
                new["effective_from"] = effective
                diff.added.append({"code": code, "name": new["name"], "row": number})
            appended.append(new)
            continue
        row = rows[cur]
        changes = {f: [row.get(f), nat[f]] for f in layout.national if f in nat and row.get(f) != nat[f]}
        if not changes:
            diff.unchanged += 1
            continue
        diff.changed.append({"code": code, "name": nat.get("name", row["name"]), "row": number, "changes": changes})
        if _span(row)[0] == e_day:
            row.update({f: nat[f] for f in changes})
            continue
        new = {k: v for k, v in row.items() if k != "note"}
        new.update({f: nat[f] for f in changes})
        new["effective_from"] = effective
        row["effective_to"] = day_before
        after[cur] = new

    if full:
        for code, idxs in in_scope.items():
            if code in imported:
                continue
            cur = next((i for i in idxs if _span(rows[i])[0] <= e_day <= _span(rows[i])[1]), None)
            if cur is None:
                continue  # retired already
            row = rows[cur]
            if _span(row)[0] == e_day:
                conflicts.append(f"{code}: not in this edition, but its row starts on the edition's date {effective}")
                continue
            row["effective_to"] = day_before
            diff.retired.append({"code": code, "name": row["name"]})

    if conflicts:
        shown = "\n  ".join(conflicts[:20])
        more = f"\n  … and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
        raise EditionError(f"{len(conflicts)} conflict(s) with the current edition:\n  {shown}{more}")
    out: list[dict[str, Any]] = []
    for i, r in enumerate(rows):
        out.append(r)
        if i in after:
            out.append(after[i])
    out.extend(sorted(appended, key=lambda r: r["code"]))
    return out, diff

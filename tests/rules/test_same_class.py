"""R20 (same_class) against the ledger: supplies of the requested ingredient itself are R19's and
never named by R20; supplies of another ingredient of the class are, each ingredient once."""

from __future__ import annotations

from services.rules.engine import Engine
from tests.rules.audit_kit import Story, ev, evidence_events, line

ATORVASTATIN = "XC10AAA067A001010104321"
ROSUVASTATIN = "XC10AAR117A001010100561"
LIPIDS = [("E78.500", "高脂血症")]


def test_a_held_supply_of_the_same_ingredient_is_not_a_class_duplicate(engine: Engine) -> None:
    s = Story(engine)
    s.send(ev("P-sc1", "sc1-1", "2026-04-01", dx=LIPIDS, items=[line("1", ROSUVASTATIN, qty=30, price=1.0, days=30)]))
    alerts = s.send(ev("P-sc1", "sc1-2", "2026-04-05", inst="H2", dx=LIPIDS,
                       items=[line("1", ROSUVASTATIN, qty=30, price=1.0, days=30)]))
    rules = {a["rule_id"] for a in alerts}
    assert "R20" not in rules and "R19" in rules


def test_only_the_other_ingredients_of_the_class_are_named(engine: Engine) -> None:
    s = Story(engine)
    s.send(ev("P-sc2", "sc2-1", "2026-04-01", dx=LIPIDS, items=[line("1", ATORVASTATIN, qty=30, price=0.3, days=30)]))
    s.send(ev("P-sc2", "sc2-2", "2026-04-02", inst="H2", dx=LIPIDS,
              items=[line("1", ROSUVASTATIN, qty=30, price=1.0, days=30)]))
    a = s.one(ev("P-sc2", "sc2-3", "2026-04-08", inst="H3", dx=LIPIDS,
                 items=[line("1", ROSUVASTATIN, qty=30, price=1.0, days=30)]), "R20")
    assert a is not None
    assert [e["event_id"] for e in evidence_events(a)] == ["sc2-3", "sc2-1"]  # the request's line, then the held supply
    assert a["message_zh"].count("(2026-04-01，H1)") == 1 and "2026-04-02" not in a["message_zh"]



def test_shared_classes_are_the_classes_of_two_or_more_ingredients(engine: Engine) -> None:
    """R20 skips lines of a class with one ingredient: nothing of another ingredient can meet them."""
    kb = engine.kb
    ingredients: dict[str, set[str]] = {}
    for row in kb.drugs.rows():
        ingredients.setdefault(row["class"], set()).add(row["ingredient"])
    assert kb.shared_classes == {cls for cls, ings in ingredients.items() if len(ings) > 1}
    statin = next(r for r in kb.drugs.rows() if r["code"] == ATORVASTATIN)
    assert statin["class"] in kb.shared_classes  # atorvastatin, rosuvastatin, ...
    assert any(len(ings) == 1 for ings in ingredients.values())  # some class is left out
    # the rows' "shared_class" tag (R20's needs) marks exactly the rows of those classes
    assert all(("shared_class" in r["_f"]) == (r["class"] in kb.shared_classes) for r in kb.drugs.rows())

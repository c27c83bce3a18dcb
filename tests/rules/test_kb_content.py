"""The shipped knowledge base holds what the issue asks for, with realistic attributes."""

from __future__ import annotations

from services.rules.engine import Engine
from services.rules.timeutil import day_of_date

DAY = day_of_date("2026-03-10")


def test_sizes(engine: Engine) -> None:
    kb = engine.kb
    assert len([r for r in kb.drugs.rows() if r["type"] != "herb"]) >= 150
    assert len(kb.services.rows()) >= 100
    assert len(kb.diagnoses.rows()) >= 150
    assert len({(r["a"], r["b"]) for rows in kb.interactions.values() for r in rows}) >= 20
    pairs = sum(len(r.get("includes") or ()) for r in kb.services.rows() if r["_from"] <= DAY <= r["_to"])
    assert pairs >= 10


def test_required_diagnoses(engine: Engine) -> None:
    kb = engine.kb
    for code in ("N40", "C61", "O80", "N95.1", "P07.3", "I10", "E10", "E11", "N18.5", "D63.1", "J18.9", "K35", "C34", "Z51.1", "Z49"):
        assert kb.diagnosis(code, DAY) is not None, code
    assert kb.diagnosis("N40.x00", DAY)["sex"] == "M"
    assert kb.diagnosis("O99.0", DAY)["code"] == "O" and kb.diagnosis("O99.0", DAY)["sex"] == "F"
    assert kb.diagnosis("P07.300", DAY)["age_max_days"] == 28
    assert kb.diagnosis("N95.100", DAY)["age_min_years"] == 40
    assert kb.diagnosis("D63.100", DAY)["group"] == kb.diagnosis("N18.500", DAY)["group"] == "CKD"


def test_required_drugs(engine: Engine) -> None:
    names = {r["name"] for r in engine.kb.drugs.rows()}
    for name in ("非那雄胺片", "盐酸坦索罗辛缓释胶囊", "黄体酮胶囊", "苯磺酸氨氯地平片", "盐酸二甲双胍片", "阿托伐他汀钙片",
                 "瑞舒伐他汀钙片", "阿莫西林胶囊", "注射用头孢曲松钠", "重组人促红素注射液", "甘精胰岛素注射液",
                 "小儿氨酚黄那敏颗粒", "左氧氟沙星片", "奥美拉唑肠溶胶囊", "华法林钠片", "阿司匹林肠溶片"):
        assert name in names, name
    ator = engine.kb.by_ingredient["atorvastatin"]
    assert len({r["manufacturer"] for r in ator}) >= 2 and len({r["class"] for r in ator}) == 1
    assert any(r.get("vbp_selected") for r in ator) and any(r.get("vbp_selected") is False for r in ator)
    assert engine.kb.by_ingredient["finasteride"][0]["sex"] == "M"


def test_required_services(engine: Engine) -> None:
    rows = {r["name"]: r for r in engine.kb.services.rows() if r["_from"] <= DAY <= r["_to"]}
    assert rows["血液透析"]["period_limit"] == {"days": 7, "max": 3}
    assert rows["床位费(普通病房三人间)"]["max_per_day"] == 1
    assert rows["住院诊查费"]["max_per_day"] == 1


def test_retired_rows_are_kept_and_dated(engine: Engine) -> None:
    versions = [r for r in engine.kb.drugs.rows() if r["ingredient"] == "ceftriaxone" and r["manufacturer"].startswith("上海罗氏")]
    assert sorted(r["price_cap"] for r in versions) == [30.0, 45.0]
    code = versions[0]["code"]
    assert engine.kb.drugs.get(code, day_of_date("2024-06-01"))["price_cap"] == 45.0
    assert engine.kb.drugs.get(code, day_of_date("2025-06-01"))["price_cap"] == 30.0

"""The rule catalogue (GET /v1/rules) and the KB search used by the admin UI."""

from __future__ import annotations

import re

from services.rules.engine import Engine

CATALOG_KEYS = {
    "id", "version", "gz_code", "name_zh", "name_en", "family", "stage", "scenes", "window", "result_type",
    "indicator", "severity", "parameters", "policy_basis", "description", "message_zh", "message_en",
    "effective_from", "effective_to", "mode",
}


def test_catalog_lists_the_rule_base(engine: Engine) -> None:
    catalog = engine.rules_catalog()
    ids = [r["id"] for r in catalog]
    assert len(catalog) >= 32
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {f"R{n:02d}" for n in range(1, 31)} <= set(ids)
    for entry in catalog:
        assert set(entry) == CATALOG_KEYS, entry["id"]
        assert re.fullmatch(r"(GZ|ZB)\d{11}", entry["gz_code"]), entry["gz_code"]
        assert entry["result_type"] in ("definite", "suspicious")
        assert entry["indicator"] in ("critical", "warning", "info")
        assert "default" in entry["parameters"]
        assert entry["name_zh"] and entry["name_en"] and entry["policy_basis"].strip()


def test_catalog_shows_region_overrides(engine: Engine) -> None:
    r19 = next(r for r in engine.rules_catalog() if r["id"] == "R19")
    assert r19["parameters"]["default"]["remaining_fraction"] == 0.33333
    assert r19["parameters"]["110100"] == {"remaining_fraction": 0.5}
    assert r19["window"] == "pt:90d" and r19["scenes"] == [2, 6, 7, 10]


def test_catalog_is_a_copy(engine: Engine) -> None:
    first = engine.rules_catalog()
    first[0]["parameters"]["default"]["poisoned"] = True
    assert "poisoned" not in engine.rules_catalog()[0]["parameters"]["default"]


def test_search_items_by_name_and_code(engine: Engine) -> None:
    by_name = engine.search_items("阿托伐他汀")
    assert len(by_name) == 3 and {r["manufacturer"] for r in by_name} >= {"辉瑞制药有限公司", "北京嘉林药业股份有限公司"}
    assert all(not any(k.startswith("_") for k in r) for r in by_name)
    by_code = engine.search_items("001109000010000")
    assert [r["name"] for r in by_code] == ["床位费(普通病房三人间)", "床位费(普通病房三人间)"]  # two dated versions
    assert {r["table"] for r in engine.search_items("血液透析")} == {"services"}
    assert len(engine.search_items("片", limit=5)) == 5
    assert engine.search_items("   ") == []


def test_search_diagnoses(engine: Engine) -> None:
    assert [r["code"] for r in engine.search_diagnoses("N40")] == ["N40"]
    assert "O80" in [r["code"] for r in engine.search_diagnoses("顺产")]
    assert engine.search_diagnoses("prostate", limit=2)[0]["table"] == "diagnoses"
    assert len(engine.search_diagnoses("prostate", limit=2)) == 2
    assert engine.search_diagnoses("") == []

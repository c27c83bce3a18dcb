"""Alert messages: the compiled templates (engine.message_format) give what format_map gives."""

from __future__ import annotations

from typing import Any

import pytest

from services.rules.engine import Engine, en_fields, message_format


def _fields(names: frozenset[str], with_en: bool) -> dict[str, Any]:
    """Distinct values of several types for a family's fields, with or without the ``_en`` variants."""
    out: dict[str, Any] = {}
    for i, name in enumerate(sorted(names)):
        out[name] = ["名称{}".format(i), i, i + 0.25, 2.0 * i][i % 4]
        if with_en and not name.endswith("_en"):
            out[name + "_en"] = f"name {i}"
    return out


@pytest.mark.parametrize("with_en", [False, True])
def test_every_packaged_template_formats_as_format_map(with_en: bool) -> None:
    engine = Engine.load()
    for rule in engine.rules:
        fields = _fields(rule.family.fields, with_en)
        assert message_format(rule.msg_zh)(fields) == rule.msg_zh.format_map(fields), rule.id
        assert message_format(rule.msg_en, english=True)(fields) == rule.msg_en.format_map(en_fields(fields)), rule.id


@pytest.mark.parametrize("template", [
    "", "plain text", "{a}", "{{literal}} {a}{b}", "前{a}中{b:.2f}后", "{a!r} {b:>8} '\"\\ {{", "{a:{b}}", "{0}",
])
def test_edge_templates_format_as_format_map(template: str) -> None:
    fields = {"a": "甲'\"", "a_en": "A", "b": 3.14159, "0": "zero"}
    try:
        expected = template.format_map(fields)
    except (KeyError, ValueError, IndexError) as exc:
        with pytest.raises(type(exc)):
            message_format(template)(fields)
    else:
        assert message_format(template)(fields) == expected
    try:
        expected_en = template.format_map(en_fields(fields))
    except (KeyError, ValueError, IndexError) as exc:
        with pytest.raises(type(exc)):
            message_format(template, english=True)(fields)
    else:
        assert message_format(template, english=True)(fields) == expected_en


def test_a_missing_field_is_a_key_error_naming_it() -> None:
    with pytest.raises(KeyError, match="item"):
        message_format("{item} x")({"other": 1})
    with pytest.raises(KeyError, match="item"):
        message_format("{item} x", english=True)({"other": 1})


def test_alert_keys_keep_their_order_and_messages(engine: Engine) -> None:
    """Alerts are built from a per-rule skeleton: the keys stay in the order the decision carries them."""
    from tests.rules.audit_kit import Story, ev, line

    s = Story(engine)
    s.send(ev("P-mf1", "mf1-1", "2026-04-01", dx=[("E78.500", "高脂血症")],
              items=[line("1", "XC10AAR117A001010100561", qty=30, price=1.0, days=30)]))
    a = s.one(ev("P-mf1", "mf1-2", "2026-04-05", inst="H2", dx=[("E78.500", "高脂血症")],
                 items=[line("1", "XC10AAR117A001010100561", qty=30, price=1.0, days=30)]), "R19")
    assert a is not None
    assert list(a) == ["rule_id", "rule_version", "gz_code", "name_zh", "name_en", "result_type", "indicator",
                       "severity", "message_zh", "message_en", "line_ids", "amount", "evidence", "policy_basis",
                       "region"]
    assert a["line_ids"] == ["1"] and a["amount"] == 30.0 and a["region"] == "default"
    assert a["message_zh"].startswith("重复开药") and a["message_en"].startswith("Duplicate prescription")

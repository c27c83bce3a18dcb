"""The generic golden-case runner (services/rules/golden.py), over the packaged rule base's cases.

The runner itself is service code: ``POST /v1/admin/rulebase`` and ``presettle rules validate``
run the same cases before a bundle is accepted.
"""

from __future__ import annotations

from typing import Any

from services.rules.bundle import bundle_files
from services.rules.engine import DEFAULT_DATA
from services.rules.golden import cases_of, check, replay, wire

__all__ = ["RULES_DIR", "check", "load_cases", "replay", "wire"]

RULES_DIR = DEFAULT_DATA / "rules"


def load_cases() -> list[tuple[str, int, dict[str, Any]]]:
    return cases_of(dict(bundle_files(DEFAULT_DATA)))

"""The rule base (规则库): rule entries read from ``services/data/rules/R*.json`` and compiled once.

Each file holds ``{"rule": {...}, "cases": [...]}``: one rule entry (data) and
its golden cases. A rule names the family function that evaluates it; its
parameters have defaults and optional per-region (poolarea) overrides.
"""

from __future__ import annotations

import pathlib
import re
import string
from typing import Any

import orjson

from services.rules.context import KNOWN_TAGS
from services.rules.exceptions import DataError
from services.rules.families import FAMILIES, Family, load_all
from services.rules.kb import SERVICE_CATEGORIES
from services.rules.timeutil import NEVER, day_of_date, effective_days

RESULT_TYPES = ("definite", "suspicious")
INDICATORS = ("critical", "warning", "info")
SEVERITIES = {"critical": "C", "warning": "W", "info": "I"}
#: A rule's mode (its data entry's ``mode``, beside ``version``): ``active`` (the default) alerts the HIS;
#: ``shadow`` is evaluated but its would-be alerts only go to the audit record (``shadow_alerts``) and a
#: metric; ``off`` is not evaluated at all. A mode change is a new rule-base revision like any other.
MODES = ("active", "shadow", "off")
STAGES = {"事前": range(1, 6), "事中": range(6, 11)}
WINDOW_RE = re.compile(r"^(req|enc|course|day|pt:\d+d|pt:ym|pt:yr)(\+(enc|active|\d+d|day))*$")
WINDOW_DAYS_RE = re.compile(r"(?:^|\+|pt:)(\d+)d\b")

RULE_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "id": (str, True), "version": (str, True), "gz_code": (str, True),
    "name_zh": (str, True), "name_en": (str, True), "family": (str, True),
    "stage": (list, True), "scenes": (list, True), "window": (str, True),
    "result_type": (str, True), "indicator": (str, True), "severity": (str, True),
    "parameters": (dict, True), "region_overrides": (dict, False),
    "policy_basis": (str, True), "message_zh": (str, True), "message_en": (str, True),
    "effective_from": (str, True), "effective_to": ((str, type(None)), False),
    "description": (str, False), "mode": (str, False),
}


def _param_ok(value: Any, types: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) and not (types is bool or (isinstance(types, tuple) and bool in types)):
        return False
    if types is float and isinstance(value, int):
        return True
    return isinstance(value, types)


def _template_fields(template: str, where: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as exc:
        raise DataError(f"{where}: bad message template ({exc})") from None


class Rule:
    """One compiled rule entry."""

    __slots__ = (
        "id", "version", "gz_code", "name_zh", "name_en", "fn", "family", "needs", "scenes",
        "frm", "to", "params", "regions", "msg_zh", "msg_en", "entry", "result_type",
        "indicator", "severity", "policy_basis", "mode",
    )

    def __init__(self, entry: dict[str, Any], fam: Family) -> None:
        self.entry = entry
        self.id: str = entry["id"]
        self.version: str = entry["version"]
        self.gz_code: str = entry["gz_code"]
        self.name_zh: str = entry["name_zh"]
        self.name_en: str = entry["name_en"]
        self.family = fam
        self.fn = fam.fn
        self.needs = fam.needs
        self.scenes = frozenset(entry["scenes"])
        self.frm = day_of_date(entry["effective_from"])
        self.to = day_of_date(entry["effective_to"]) if entry.get("effective_to") else NEVER
        self.params: dict[str, Any] = dict(entry["parameters"])
        self.regions: dict[str, dict[str, Any]] = {
            region: {**self.params, **over} for region, over in (entry.get("region_overrides") or {}).items()
        }
        self.msg_zh: str = entry["message_zh"]
        self.msg_en: str = entry["message_en"]
        self.result_type: str = entry["result_type"]
        self.indicator: str = entry["indicator"]
        self.severity: str = entry["severity"]
        self.policy_basis: str = entry["policy_basis"]
        self.mode: str = entry.get("mode", "active")

    def resolve(self, region: str) -> tuple[dict[str, Any], str]:
        params = self.regions.get(region)
        if params is None:
            return self.params, "default"
        return params, region

    def param_max(self, name: str) -> Any:
        values = [self.params[name]] + [p[name] for p in self.regions.values()]
        return max(values)

    def catalog(self) -> dict[str, Any]:
        e = self.entry
        return {
            "id": self.id, "version": self.version, "gz_code": self.gz_code,
            "name_zh": self.name_zh, "name_en": self.name_en, "family": e["family"],
            "stage": e["stage"], "scenes": sorted(self.scenes), "window": e["window"],
            "result_type": self.result_type, "indicator": self.indicator, "severity": self.severity,
            "parameters": {"default": dict(self.params), **{r: dict(o) for r, o in (e.get("region_overrides") or {}).items()}},
            "policy_basis": self.policy_basis, "description": e.get("description", ""),
            "message_zh": self.msg_zh, "message_en": self.msg_en,
            "effective_from": e["effective_from"], "effective_to": e.get("effective_to"),
            "mode": self.mode,
        }


def validate_entry(entry: Any, where: str) -> Family:
    if not isinstance(entry, dict):
        raise DataError(f"{where}: 'rule' must be an object")
    unknown = set(entry) - set(RULE_FIELDS)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {sorted(unknown)}")
    for name, (types, required) in RULE_FIELDS.items():
        if name not in entry:
            if required:
                raise DataError(f"{where}: missing required field {name!r}")
            continue
        if not isinstance(entry[name], types):
            raise DataError(f"{where}: field {name!r} has the wrong type")
    rid = entry["id"]
    if not re.fullmatch(r"R\d{2,3}", rid):
        raise DataError(f"{where}: id {rid!r} must look like R01")
    if not re.fullmatch(r"\d+\.\d+\.\d+", entry["version"]):
        raise DataError(f"{where}: version {entry['version']!r} must be semantic (1.0.0)")
    fam = FAMILIES.get(entry["family"])
    if fam is None:
        raise DataError(f"{where}: unknown family {entry['family']!r} (known: {sorted(FAMILIES)})")
    unknown_tags = set(fam.needs) - KNOWN_TAGS
    if unknown_tags:
        raise DataError(f"{where}: field 'family': family {fam.name} needs unknown tag(s) {sorted(unknown_tags)} "
                        "that no event or KB row carries, so the rule could never run "
                        "(known tags: services.rules.context.KNOWN_TAGS)")
    scenes = entry["scenes"]
    if not scenes or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 10 for s in scenes):
        raise DataError(f"{where}: scenes must be a non-empty list of trig_scen ints 1..10")
    stages = entry["stage"]
    if not stages or any(s not in STAGES for s in stages):
        raise DataError(f"{where}: stage must list 事前 and/or 事中")
    for s in scenes:
        if not any(s in STAGES[st] for st in stages):
            raise DataError(f"{where}: scene {s} is outside the rule's stage(s) {stages}")
    if not WINDOW_RE.match(entry["window"]):
        raise DataError(f"{where}: field 'window': {entry['window']!r} is not one of req, enc, day, course, pt:Nd, "
                        "pt:ym, pt:yr (joined by +: enc, active, day, Nd)")
    if entry.get("mode", "active") not in MODES:
        raise DataError(f"{where}: field 'mode': {entry['mode']!r} is not one of {MODES}")
    if entry["result_type"] not in RESULT_TYPES:
        raise DataError(f"{where}: result_type must be one of {RESULT_TYPES}")
    if entry["indicator"] not in INDICATORS:
        raise DataError(f"{where}: indicator must be one of {INDICATORS}")
    if entry["severity"] != SEVERITIES[entry["indicator"]]:
        raise DataError(f"{where}: severity {entry['severity']!r} does not match indicator {entry['indicator']!r}")
    params = entry["parameters"]
    missing = set(fam.params) - set(params)
    if missing:
        raise DataError(f"{where}: field 'parameters' lacks default(s) for {sorted(missing)}")
    extra = set(params) - set(fam.params)
    if extra:
        raise DataError(f"{where}: field 'parameters': family {fam.name} has no parameter(s) {sorted(extra)} "
                        f"(it has {sorted(fam.params)})")
    for name, value in params.items():
        _check_param(where, f"parameters.{name}", value, fam.params[name])
    for region, over in (entry.get("region_overrides") or {}).items():
        if not isinstance(over, dict) or not over:
            raise DataError(f"{where}: region_overrides[{region!r}] must be a non-empty object")
        for name, value in over.items():
            if name not in fam.params:
                raise DataError(f"{where}: region_overrides[{region!r}] names unknown parameter {name!r} "
                                f"(family {fam.name} has {sorted(fam.params)})")
            if name in fam.state_params:
                raise DataError(f"{where}: region_overrides[{region!r}].{name}: a state parameter cannot vary by "
                                "region (the patient state holds one accumulation)")
            _check_param(where, f"region_overrides[{region!r}].{name}", value, fam.params[name])
    _check_window(entry["window"], fam, params, where)
    for lang in ("message_zh", "message_en"):
        unknown_fields = _template_fields(entry[lang], where) - fam.fields
        if unknown_fields:
            raise DataError(f"{where}: {lang} uses field(s) {sorted(unknown_fields)} the family {fam.name} does not fill (it fills {sorted(fam.fields)})")
    effective_days(entry, where)
    return fam


def _check_param(where: str, field: str, value: Any, types: type | tuple[type, ...]) -> None:
    if not _param_ok(value, types):
        raise DataError(f"{where}: {field}={value!r} has the wrong type")
    if field.endswith("_categories") and isinstance(value, list):
        bad = [c for c in value if c not in SERVICE_CATEGORIES]
        if bad:
            raise DataError(f"{where}: {field} names unknown service categories {bad} (known: {SERVICE_CATEGORIES})")


def _check_window(window: str, fam: Family, params: dict[str, Any], where: str) -> None:
    """A window's day counts (``pt:90d``, ``enc+90d``) must be the default of the parameter that decides
    the look-back: the family's state-window parameter, else one named ``*_days``."""
    days = [int(n) for n in WINDOW_DAYS_RE.findall(window)]
    if not days:
        return
    names = list(fam.windows.values()) or [n for n in fam.params if n.endswith("_days")]
    values = {params[n] for n in names if isinstance(params.get(n), int)}
    for n in days:
        if n not in values:
            raise DataError(f"{where}: field 'window': {window!r} says {n} days but the look-back parameter(s) "
                            f"{names or '(none: the family has no *_days parameter)'} default to {sorted(values)}; "
                            "make them agree (the parameter decides, the window documents it)")


def check_state_params(rules: list[tuple[str, dict[str, Any], Family]]) -> None:
    """Rules of one family give each of its state parameters the same value (the state holds one)."""
    first: dict[tuple[str, str], tuple[str, Any]] = {}
    for where, entry, fam in rules:
        for name in fam.state_params:
            value = entry["parameters"][name]
            seen = first.setdefault((fam.name, name), (where, value))
            if seen[1] != value:
                raise DataError(f"{where}: parameters.{name}={value!r} differs from {seen[0]} ({seen[1]!r}): "
                                f"it shapes the patient state, so every {fam.name} rule must give it the same value")


def parse_rule_file(name: str, data: bytes) -> dict[str, Any]:
    """One rule file's document (``{"rule": {...}, "cases": [...]}``); ``name`` is for messages."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or "rule" not in doc:
        raise DataError(f'{name}: expected {{"rule": {{...}}, "cases": [...]}}')
    return doc


def load_rule_files(rules_dir: pathlib.Path) -> list[tuple[pathlib.Path, dict[str, Any]]]:
    files = sorted(rules_dir.glob("R*.json"))
    if not files:
        raise DataError(f"{rules_dir}: no rule files (R*.json)")
    return [(path, parse_rule_file(str(path), path.read_bytes())) for path in files]


def compile_rules(rules_dir: pathlib.Path) -> list[Rule]:
    return compile_rule_docs([(path.name, doc) for path, doc in load_rule_files(rules_dir)])


def compile_rule_docs(docs: list[tuple[str, dict[str, Any]]]) -> list[Rule]:
    """Compile rule documents given as ``(file name R*.json, document)`` (a directory's or an uploaded bundle's)."""
    load_all()
    if not docs:
        raise DataError("no rule files (R*.json)")
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    checked: list[tuple[str, dict[str, Any], Family]] = []
    for name, doc in docs:
        entry = doc["rule"]
        fam = validate_entry(entry, name)
        checked.append((name, entry, fam))
        if entry["id"] != pathlib.PurePosixPath(name).stem:
            raise DataError(f"{name}: rule id {entry['id']!r} does not match the file name")
        if entry["id"] in seen:
            raise DataError(f"{name}: rule id {entry['id']} also defined in {seen[entry['id']]}")
        seen[entry["id"]] = name
        rules.append(Rule(entry, fam))
    check_state_params(checked)
    rules.sort(key=lambda r: r.id)
    return rules

"""Rule modes (active | shadow | off), bundle validation with the golden cases, and the bundle's
transport format (uploads, the compressed blob, chunks) — all pure, no broker."""

from __future__ import annotations

import io
import tarfile
import time

import jsonschema
import orjson
import pytest

from services.contracts import rulebase as rb
from services.rules import decision as dec
from services.rules.bundle import (
    BundleFormatError,
    bundle_files,
    files_from_json,
    files_from_tar,
    pack,
    revision_of_files,
    tar_of_files,
    unpack,
)
from services.rules.dataschema import rule_file_schema
from services.rules.engine import DEFAULT_DATA, Engine
from services.rules.exceptions import DataError
from services.rules.golden import BundleRejected, check_bundle
from tests.factories import drug, dx, event
from tests.rules.national import DIAGNOSES, DRUGS, SERVICES, national_files

FUROSEMIDE = "XC03CAG012A001010100507"  # no max_days in the KB: R18's default_days decides


def packaged() -> dict[str, bytes]:
    return dict(bundle_files(DEFAULT_DATA))


def edit(files: dict[str, bytes], rule_id: str, **changes: object) -> dict[str, bytes]:
    doc = orjson.loads(files[f"rules/{rule_id}.json"])
    doc["rule"].update(changes)
    return {**files, f"rules/{rule_id}.json": orjson.dumps(doc)}


def wire(body: dict) -> dict:
    from services.contracts.event import Event

    return Event.model_validate(body).to_wire()


def rule_ids(alerts: list[dict]) -> set[str]:
    return {a["rule_id"] for a in alerts}


def test_shadow_rule_is_evaluated_but_its_alerts_are_kept_apart() -> None:
    engine = Engine.from_files(edit(packaged(), "R03", mode="shadow"))
    body = wire(event(gender="F", diagnoses=[dx("N40")]))
    _, alerts, _, shadow = engine.decide_all(None, body)
    assert "R03" not in rule_ids(alerts) and rule_ids(shadow) == {"R03"}
    assert "R03" not in rule_ids(engine.evaluate(None, body))
    # The worker's per-event logic numbers shadow alerts like alerts and never records them in the state.
    blob, outcome = dec.handle_event(engine, None, body)
    assert [a["rule_id"] for a in outcome["shadow_alerts"]] == ["R03"]
    assert outcome["shadow_alerts"][0]["alert_id"] == f"{outcome['decision_id']}.R03.1"
    _, replay = dec.handle_event(engine, blob, body)
    assert replay["replayed"] and replay["shadow_alerts"] == [] and "R03" not in rule_ids(replay["alerts"])
    # The same rule active fires for the HIS.
    assert "R03" in rule_ids(Engine.from_files(packaged()).evaluate(None, body))


def test_off_rule_is_not_evaluated_and_the_catalogue_says_so() -> None:
    engine = Engine.from_files(edit(packaged(), "R03", mode="off"))
    body = wire(event(gender="F", diagnoses=[dx("N40")]))
    _, alerts, _, shadow = engine.decide_all(None, body)
    assert "R03" not in rule_ids(alerts) | rule_ids(shadow)
    modes = {r["id"]: r["mode"] for r in engine.rules_catalog()}
    assert modes["R03"] == "off" and modes["R01"] == "active"


def test_a_bad_mode_is_refused_by_the_loader_and_the_schema() -> None:
    files = edit(packaged(), "R03", mode="sometimes")
    with pytest.raises(DataError, match=r"R03.json: field 'mode': 'sometimes'"):
        Engine.from_files(files)
    schema = rule_file_schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(orjson.loads(files["rules/R03.json"]), schema)
    jsonschema.validate(orjson.loads(edit(packaged(), "R03", mode="shadow")["rules/R03.json"]), schema)


def test_mode_or_parameter_change_is_a_new_revision() -> None:
    base = revision_of_files(packaged())
    assert revision_of_files(edit(packaged(), "R03", mode="shadow")) != base
    assert revision_of_files(edit(packaged(), "R03", mode="active")) != base  # explicit default: other content
    doc = orjson.loads(packaged()["rules/R18.json"])
    doc["rule"]["parameters"]["default_days"] = 10
    assert revision_of_files({**packaged(), "rules/R18.json": orjson.dumps(doc)}) != base


def test_check_bundle_runs_every_golden_case_whatever_the_modes() -> None:
    engine, cases = check_bundle(edit(edit(packaged(), "R03", mode="shadow"), "R05", mode="off"))
    assert cases > 200 and engine.honour_modes and engine.by_id["R03"].mode == "shadow"


def broken_r03(files: dict[str, bytes]) -> dict[str, bytes]:
    """R03 (diagnosis vs sex) with its sex table inverted for N40: its firing cases no longer fire."""
    kb = orjson.loads(files["kb/diagnoses.json"])
    for row in kb["rows"]:
        if row["code"].startswith("N40") and row.get("sex") == "M":
            row["sex"] = "F"
    return {**files, "kb/diagnoses.json": orjson.dumps(kb)}


def test_check_bundle_lists_the_failing_rule_and_cases() -> None:
    with pytest.raises(BundleRejected) as err:
        check_bundle(broken_r03(packaged()))
    failing = {(f["rule_id"], f["case"]) for f in err.value.failures}
    assert ("R03", 0) in failing or any(r == "R03" for r, _ in failing), failing
    assert all(f["errors"] and f["name"] for f in err.value.failures)


def test_check_bundle_reports_a_loader_error_with_its_file() -> None:
    files = packaged()
    files["kb/drugs.json"] = b'{"table": "drugs", "rows": [{"code": "X1"}]}'
    with pytest.raises(BundleRejected) as err:
        check_bundle(files)
    assert err.value.failures[0]["rule_id"] is None and "drugs.json" in err.value.failures[0]["errors"][0]


def test_uploads_tar_with_or_without_a_directory_and_json() -> None:
    files = packaged()
    assert files_from_tar(tar_of_files(files)) == files
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"mybundle/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert files_from_tar(out.getvalue()) == files
    as_json = {rel: orjson.loads(data) for rel, data in files.items()}
    assert revision_of_files(files_from_json(as_json)) == revision_of_files(files)
    with pytest.raises(BundleFormatError, match=r"\.\./etc/passwd"):
        files_from_json({"../etc/passwd": {}})
    with pytest.raises(BundleFormatError, match="rules/R01.json: not valid JSON"):
        files_from_json({"rules/R01.json": "{not json"})
    with pytest.raises(BundleFormatError, match="not a tar"):
        files_from_tar(b"PK\x03\x04 a zip is not a tar")


def test_a_national_size_bundle_fits_kafka_records_and_loads() -> None:
    files = national_files()
    raw = sum(len(v) for v in files.values())
    t0 = time.perf_counter()
    engine, _ = check_bundle(files)
    seconds = time.perf_counter() - t0
    rows = {t: len(orjson.loads(files[f"kb/{t}.json"])["rows"]) for t in ("drugs", "services", "diagnoses")}
    assert rows == {"drugs": DRUGS, "services": SERVICES, "diagnoses": DIAGNOSES}
    assert len(engine.kb.drugs.rows()) == DRUGS and len(engine.kb.services.rows()) == SERVICES
    blob = pack(files)
    parts = rb.chunks(blob)
    # Every record well under Kafka's default 1 MiB limit (message.max.bytes, max.request.size).
    assert all(len(p) <= rb.CHUNK_BYTES < 1024 * 1024 - 64 * 1024 for p in parts)
    assert b"".join(parts) == blob and unpack(blob) == files
    assert revision_of_files(unpack(b"".join(parts))) == revision_of_files(files)
    print(f"national-size bundle: {raw} bytes raw, {len(blob)} compressed, {len(parts)} chunk(s), "
          f"validated in {seconds:.2f} s")


def test_chunk_keys_parse_back() -> None:
    assert rb.parse_key(rb.chunk_key("rb-0123456789abcdef", 3)) == ("bundle", "rb-0123456789abcdef", 3)
    assert rb.parse_key(rb.manifest_key("rb-0123456789abcdef")) == ("manifest", "rb-0123456789abcdef", -1)
    assert rb.parse_key("active") == ("active", "", -1)
    assert rb.parse_key("bundle.x") == ("unknown", "", -1)
    assert rb.chunks(b"a" * 10, 4) == [b"aaaa", b"aaaa", b"aa"]


def test_drug_days_parameter_is_what_r18_reads() -> None:
    """The e2e test changes R18's default_days for one region: check that lever here first."""
    doc = orjson.loads(packaged()["rules/R18.json"])
    doc["rule"]["region_overrides"]["330100"]["default_days"] = 10
    files = {**packaged(), "rules/R18.json": orjson.dumps(doc)}
    check_bundle(files)  # the golden cases (no region) still hold
    body = wire(event(items=[drug(FUROSEMIDE, 8, 8)], diagnoses=[dx("I10")]))
    assert "R18" in rule_ids(Engine.from_files(packaged()).evaluate(None, body))
    assert "R18" not in rule_ids(Engine.from_files(files).evaluate(None, body))

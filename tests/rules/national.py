"""A rule-base bundle the size of the national catalogues (≈ 3,000 drugs, ≈ 10,000 services and
consumables, ≈ 30,000 ICD-10 codes), built from the packaged one by adding synthetic rows shaped
like its own (issue 12: the rule-base topic must carry such a bundle)."""

from __future__ import annotations

import copy

import orjson

from services.rules.bundle import bundle_files
from services.rules.engine import DEFAULT_DATA

DRUGS, SERVICES, DIAGNOSES = 3000, 10000, 30000


def national_files() -> dict[str, bytes]:
    files = dict(bundle_files(DEFAULT_DATA))
    tables = {t: orjson.loads(files[f"kb/{t}.json"]) for t in ("drugs", "services", "diagnoses")}
    western = [r for r in tables["drugs"]["rows"] if r["type"] == "western"]
    for i in range(DRUGS - len(tables["drugs"]["rows"])):
        row = copy.deepcopy(western[i % len(western)])
        # 23-character national drug code: X + class(5) + name(4) + form(4) + spec(4) + maker(5)
        row["code"] = f"XZ99ZZ{i % 10000:04d}A001{i // 10000:04d}{i % 99999:05d}"
        row["name"] = f"合成药品{i}片"
        tables["drugs"]["rows"].append(row)
    plain = [r for r in tables["services"]["rows"] if not r.get("includes") and not r.get("components")]
    for i in range(SERVICES - len(tables["services"]["rows"])):
        row = copy.deepcopy(plain[i % len(plain)])
        row["code"] = f"0099{i:011d}" if row["kind"] == "service" else f"C99{i:017d}"
        row["name"] = f"合成项目{i}"
        tables["services"]["rows"].append(row)
    leaf = [r for r in tables["diagnoses"]["rows"] if not r.get("prefix")]
    for i in range(DIAGNOSES - len(tables["diagnoses"]["rows"])):
        row = copy.deepcopy(leaf[i % len(leaf)])
        row["code"] = f"U{i // 1000:02d}.{i % 1000:03d}x{i % 997:03d}"
        row["name"] = f"合成诊断{i}"
        tables["diagnoses"]["rows"].append(row)
    for t, doc in tables.items():
        files[f"kb/{t}.json"] = orjson.dumps(doc)
    return files

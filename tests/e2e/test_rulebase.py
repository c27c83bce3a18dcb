"""Rule-base revisions published without restart, end to end (issue 12).

A real stack (broker, worker process, uvicorn ingress): publish a bundle that changes one rule's
parameter (R18's default days for region 330100) and puts another rule in shadow mode (R03);
within 5 s decisions carry the new revision and reflect both changes, with the same worker and
ingress processes; the shadow alert is in the audit record and the worker's metric, never in the
answer; an invalid bundle is refused with 422 and changes nothing; a worker started after the
publish serves the published revision; activating the old revision restores it; a bundle the
size of the national catalogues travels through the topic and is served too.
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import time
import urllib.request
from collections.abc import Iterator

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services import cli
from services.contracts.decision import AuditRecord
from services.rules.bundle import bundle_files, revision_of, revision_of_files
from services.rules.engine import DEFAULT_DATA
from services.stack import Stack
from tests.conftest import start_stack
from tests.factories import drug, dx, event, uid
from tests.rules.national import national_files

pytestmark = pytest.mark.e2e

ADMIN = {"X-API-Key": "dev-admin-key"}
FUROSEMIDE = "XC03CAG012A001010100507"  # no max_days in the KB: R18's default_days (7) decides


@pytest.fixture(scope="module")
def rb_stack() -> Iterator[Stack]:
    stack = start_stack("rulebase")
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def http(rb_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rb_stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=60) as c:
        yield c


def decide(http: httpx.Client, body: dict) -> dict:
    r = http.post("/v1/events", json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["engine_status"] == "evaluated", answer
    return answer


def r18_event() -> dict:
    """8 days of furosemide at an outpatient visit in region 330100: R18 fires at 7 days, not at 10."""
    return event(patient=uid("P"), items=[drug(FUROSEMIDE, 8, 8)], diagnoses=[dx("I10")])


def r03_event() -> dict:
    """A woman with N40 (benign prostatic hyperplasia): R03 (diagnosis vs sex)."""
    return event(patient=uid("P"), gender="F", diagnoses=[dx("N40")])


def ids(answer: dict) -> set[str]:
    return {a["rule_id"] for a in answer["alerts"]}


def candidate(tmp: pathlib.Path) -> pathlib.Path:
    """A copy of the packaged rule base: R18 allows 10 days in region 330100, R03 in shadow mode."""
    root = tmp / "candidate"
    for section in ("rules", "kb"):
        shutil.copytree(DEFAULT_DATA / section, root / section)
    r18 = root / "rules" / "R18.json"
    doc = orjson.loads(r18.read_bytes())
    doc["rule"]["region_overrides"]["330100"]["default_days"] = 10
    doc["rule"]["version"] = "1.1.0"
    r18.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    r03 = root / "rules" / "R03.json"
    doc = orjson.loads(r03.read_bytes())
    doc["rule"]["mode"] = "shadow"
    r03.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return root


async def _audit(bootstrap: str, topic: str, decision_ids: set[str], timeout: float = 20.0) -> dict[str, dict]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, dict] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and set(found) != decision_ids:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                for r in records:
                    value = orjson.loads(r.value)
                    if value["decision_id"] in decision_ids:
                        found[value["decision_id"]] = value
    finally:
        await consumer.stop()
    return found


def worker_metric(stack: Stack, name: str, label: str) -> float:
    port = stack.settings.worker_metrics_port
    with urllib.request.urlopen(f"http://{stack.settings.http_host}:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{label}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_revision(http: httpx.Client, make: object, revision: str, timeout: float) -> tuple[dict, float]:
    """Send events until one is decided by ``revision``; (that answer, seconds it took)."""
    t0 = time.monotonic()
    while True:
        answer = decide(http, make())  # type: ignore[operator]
        if answer["rulebase_revision"] == revision:
            return answer, time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, f"still {answer['rulebase_revision']} after {timeout} s"
        time.sleep(0.1)


def test_publish_shadow_reject_late_worker_and_roll_back(rb_stack: Stack, http: httpx.Client,
                                                         tmp_path: pathlib.Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    packaged = revision_of(DEFAULT_DATA)
    worker_pid, ingress_pid = rb_stack.workers[0].pid, rb_stack.ingress.pid  # type: ignore[union-attr]

    # Before: the packaged rule base, never published.
    rules = http.get("/v1/rules").json()
    assert rules["revision"] == packaged and rules["activated_at"] is None
    before18, before03 = decide(http, r18_event()), decide(http, r03_event())
    assert "R18" in ids(before18) and "R03" in ids(before03)
    assert before18["rulebase_revision"] == before03["rulebase_revision"] == packaged

    # An invalid bundle: R03's golden cases fail (N40 flipped to a women's diagnosis) → 422, nothing changes.
    bad = {rel: data for rel, data in bundle_files(DEFAULT_DATA)}
    kb = orjson.loads(bad["kb/diagnoses.json"])
    for row in kb["rows"]:
        if row["code"].startswith("N40") and row.get("sex") == "M":
            row["sex"] = "F"
    bad["kb/diagnoses.json"] = orjson.dumps(kb)
    r = http.post("/v1/admin/rulebase", headers=ADMIN,
                  json={rel: orjson.loads(data) for rel, data in bad.items()})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "bundle_rejected" and "R03" in {f["rule_id"] for f in body["failures"]}
    assert all(f["errors"] and f["case"] is not None for f in body["failures"])
    # A rule with an unknown mode: the loader's error, naming the file and field.
    good = {rel: orjson.loads(data) for rel, data in bundle_files(DEFAULT_DATA)}
    good["rules/R05.json"]["rule"]["mode"] = "sometimes"
    r = http.post("/v1/admin/rulebase", headers=ADMIN, json=good)
    assert r.status_code == 422 and "R05.json: field 'mode'" in r.text, r.text
    # A bundle is the whole rule base, not a patch: a missing table is named.
    r = http.post("/v1/admin/rulebase", headers=ADMIN, json={"rules/R05.json": good["rules/R05.json"]})
    assert r.status_code == 422 and "kb/" in r.json()["failures"][0]["file"], r.text
    assert http.post("/v1/admin/rulebase", json={}).status_code == 401  # an institution key is not enough
    assert http.get("/v1/rules").json()["revision"] == packaged
    assert http.get("/v1/admin/rulebase/revisions", headers=ADMIN).json()["revisions"] == []
    assert "R03" in ids(decide(http, r03_event()))

    # Publish the candidate with the CLI: validated, stored, active.
    cand = candidate(tmp_path)
    new = revision_of(cand)
    assert cli.main(["rules", "validate", str(cand)]) == 0
    t0 = time.monotonic()
    assert cli.main(["rules", "publish", str(cand), "--url", rb_stack.url, "--admin-key", "dev-admin-key",
                     "--note", "R18 10 days in 330100; R03 shadow"]) == 0
    assert new in capsys.readouterr().out
    after18, waited = wait_revision(http, r18_event, new, 5.0)
    switched_s = time.monotonic() - t0
    assert switched_s < 5.0, switched_s
    assert "R18" not in ids(after18)  # the parameter change
    after03 = decide(http, r03_event())
    assert after03["rulebase_revision"] == new and "R03" not in ids(after03)  # shadow: not for the HIS
    print(f"published {new}: decisions by it {switched_s:.2f} s after the publish began")

    # Same processes: nothing restarted.
    assert rb_stack.workers[0].pid == worker_pid and rb_stack.workers[0].poll() is None
    assert rb_stack.ingress is not None and rb_stack.ingress.pid == ingress_pid and rb_stack.ingress.poll() is None

    # The rule catalogue and the revision list say what is served.
    rules = http.get("/v1/rules").json()
    assert rules["revision"] == new and rules["activated_at"]
    by_id = {r["id"]: r for r in rules["rules"]}
    assert by_id["R03"]["mode"] == "shadow" and by_id["R18"]["parameters"]["330100"]["default_days"] == 10
    listing = http.get("/v1/admin/rulebase/revisions", headers=ADMIN).json()
    assert listing["active"] == new and listing["packaged"] == packaged
    assert [(v["revision"], v["active"]) for v in listing["revisions"]] == [(new, True)]
    assert listing["revisions"][0]["rules"]["R03"]["mode"] == "shadow"

    # The shadow alert: in the audit record and the worker's metric, never in the answer.
    audit = asyncio.run(_audit(rb_stack.bootstrap, rb_stack.settings.decisions_topic,
                               {after03["decision_id"], before03["decision_id"]}))
    shadowed = AuditRecord.model_validate(audit[after03["decision_id"]])
    assert shadowed.rulebase_revision == new and [a.rule_id for a in shadowed.shadow_alerts] == ["R03"]
    assert "R03" not in {a.rule_id for a in shadowed.alerts}
    earlier = AuditRecord.model_validate(audit[before03["decision_id"]])
    assert earlier.rulebase_revision == packaged and earlier.shadow_alerts == []
    assert worker_metric(rb_stack, "presettle_shadow_alerts_total", 'rule_id="R03"') >= 1

    # A worker started after the publish serves the published revision (not the packaged files).
    rb_stack.kill_worker(0)
    rb_stack.start_worker(0)
    rb_stack.wait_healthy(90)
    late = decide(http, r03_event())
    assert late["rulebase_revision"] == new and "R03" not in ids(late)
    assert "R18" not in ids(decide(http, r18_event()))

    # Roll back to the packaged revision: restored everywhere, no restart.
    late_pid = rb_stack.workers[0].pid
    assert cli.main(["rules", "activate", packaged, "--url", rb_stack.url, "--admin-key", "dev-admin-key"]) == 0
    back18, _ = wait_revision(http, r18_event, packaged, 5.0)
    assert "R18" in ids(back18)
    back03 = decide(http, r03_event())
    assert back03["rulebase_revision"] == packaged and "R03" in ids(back03)
    assert http.get("/v1/rules").json()["revision"] == packaged
    listing = http.get("/v1/admin/rulebase/revisions", headers=ADMIN).json()
    assert listing["active"] == packaged
    assert [h["action"] for h in listing["history"]] == ["publish", "activate"]
    assert rb_stack.workers[0].pid == late_pid and rb_stack.ingress.pid == ingress_pid

    # And forward again to the stored revision.
    r = http.post("/v1/admin/rulebase/activate", headers=ADMIN, json={"revision": new})
    assert r.status_code == 200 and r.json()["active"] is True, r.text
    wait_revision(http, r03_event, new, 5.0)
    r = http.post("/v1/admin/rulebase/activate", headers=ADMIN, json={"revision": "rb-0000000000000000"})
    assert r.status_code == 404 and r.json()["field"] == "revision"


def test_a_national_size_bundle_is_published_and_served(rb_stack: Stack, http: httpx.Client) -> None:
    files = national_files()
    revision = revision_of_files(files)
    t0 = time.monotonic()
    r = http.post("/v1/admin/rulebase", headers={**ADMIN, "Content-Type": "application/gzip"},
                  content=_tar(files), params={"note": "national size"})
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == revision and r.json()["active"] is True
    answer, _ = wait_revision(http, r03_event, revision, 30.0)
    print(f"national-size bundle {revision}: served by the worker {time.monotonic() - t0:.2f} s after the "
          "upload began")
    listing = http.get("/v1/admin/rulebase/revisions", headers=ADMIN).json()
    stored = next(v for v in listing["revisions"] if v["revision"] == revision)
    assert stored["blob_bytes"] > 512 * 1024  # more than one chunk on the topic
    assert "R03" in ids(answer)


def _tar(files: dict[str, bytes]) -> bytes:
    from services.rules.bundle import tar_of_files

    return tar_of_files(files)

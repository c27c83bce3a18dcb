"""Load with bookkeeping, and the audit-topic check the chaos suite and the soak share.

``Load`` posts events at a steady rate (open loop: request i is due at
``start + i / rate``), each with a unique event id, spread over many patients
(few events per patient, so every event stays inside the idempotency window),
and records every answer. ``read_audit`` reads the whole audit topic from the
start. ``verify`` then checks the promise of the README: every accepted event
(answered ``evaluated`` or ``timeout``) has exactly one decision on the audit
topic, no decision appears twice, and a retry of every accepted event is
answered ``replayed: true`` with the same decision id (the state holds the
event once: applied, and not applied again).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer

CST = timezone(timedelta(hours=8))
ACCEPTED = ("evaluated", "timeout")


def make_event(patient: str, n: int, institution: str = "H1") -> dict[str, Any]:
    """A small valid outpatient event; ``n`` orders one patient's events in event time."""
    at = datetime(2026, 3, 1, 8, 0, tzinfo=CST) + timedelta(minutes=n)
    return {
        "event_id": f"ev-{uuid.uuid4().hex[:16]}",
        "scene": 2,
        "occurred_at": at.isoformat(),
        "institution": {"id": institution, "level": 3, "region": "330100"},
        "patient": {"id": patient, "gender": "M", "birth_date": "1960-05-01", "insurance_type": "310",
                    "region": "330100"},
        "encounter": {"id": f"E{uuid.uuid4().hex[:10]}", "type": "outpatient"},
        "diagnoses": [{"code": "I10", "name": None, "main": True}],
        "items": [{"line_id": "1", "code": "XC10AAA067A001010101234", "name": None, "kind": "drug",
                   "quantity": 7, "unit": "片", "unit_price": 1.0, "amount": 7.0, "days_supply": 7}],
    }


@dataclass
class Answer:
    event: dict[str, Any]
    status: str  # evaluated | timeout | unavailable | http-<code> | error-<type>
    decision_id: str | None = None
    replayed: bool | None = None
    latency_s: float = 0.0
    due_s: float = 0.0  # seconds after the load started


@dataclass
class Load:
    url: str
    rate: float = 50.0
    budget_ms: int = 300
    patients: int = 400
    api_key: str = "dev-key-h1"
    answers: list[Answer] = field(default_factory=list)
    _stop: asyncio.Event | None = None
    _n: int = 0

    def _next_event(self) -> dict[str, Any]:
        n = self._n
        self._n += 1
        # Round-robin over the patients: at most ~n/patients events per patient.
        return make_event(f"CHAOS-{self.run_id}-{n % self.patients}", n // self.patients)

    def __post_init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:6]

    async def run(self, duration_s: float) -> None:
        """Post at ``rate`` for ``duration_s`` (or until ``stop()``); every answer is kept."""
        self._stop = asyncio.Event()
        async with _session(self.url, self.api_key) as client:
            t0 = time.monotonic()
            tasks: set[asyncio.Task[None]] = set()
            i = 0
            while not self._stop.is_set():
                due = i / self.rate
                if due >= duration_s:
                    break
                delay = t0 + due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
                    if self._stop.is_set():
                        break
                task = asyncio.get_running_loop().create_task(self._one(client, self._next_event(), due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                i += 1
            if tasks:
                await asyncio.gather(*tasks)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def _one(self, client: aiohttp.ClientSession, event: dict[str, Any], due: float) -> None:
        t = time.monotonic()
        try:
            status, body = await _post(client, event, self.budget_ms)
            if status != 200:
                answer = Answer(event, f"http-{status}")
            else:
                answer = Answer(event, body["engine_status"], body.get("decision_id"), body.get("replayed"))
        except Exception as exc:  # noqa: BLE001 - recorded, the check decides
            answer = Answer(event, f"error-{type(exc).__name__}")
        answer.latency_s = time.monotonic() - t
        answer.due_s = due
        self.answers.append(answer)

    def accepted(self) -> list[Answer]:
        return [a for a in self.answers if a.status in ACCEPTED]

    def counts(self) -> dict[str, int]:
        return dict(collections.Counter(a.status for a in self.answers))


def _session(url: str, api_key: str) -> aiohttp.ClientSession:
    # aiohttp, not httpx: httpx's pool costs more CPU per request than the service at 50 req/s.
    return aiohttp.ClientSession(base_url=url, headers={"X-API-Key": api_key, "Content-Type": "application/json"},
                                 timeout=aiohttp.ClientTimeout(total=90),
                                 connector=aiohttp.TCPConnector(limit=200))


async def _post(client: aiohttp.ClientSession, event: dict[str, Any], budget_ms: int) -> tuple[int, Any]:
    async with client.post("/v1/events", data=orjson.dumps(event), params={"budget_ms": str(budget_ms)}) as r:
        raw = await r.read()
        return r.status, (orjson.loads(raw) if r.status == 200 else raw)


async def read_audit(bootstrap: str, topic: str, settle_s: float = 3.0, timeout_s: float = 120.0,
                     **client: Any) -> list[dict[str, Any]]:
    """Every record of the audit topic, read from the start until ``settle_s`` of quiet."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                fetch_max_wait_ms=50, max_partition_fetch_bytes=4 << 20, **client)
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        end = time.monotonic() + timeout_s
        quiet_until = time.monotonic() + settle_s
        while time.monotonic() < min(quiet_until, end):
            batches = await consumer.getmany(timeout_ms=300)
            if batches:
                quiet_until = time.monotonic() + settle_s
            for records in batches.values():
                found += [orjson.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return found


@dataclass
class Verdict:
    accepted: int
    lost: list[str]  # event ids accepted without a decision on the audit topic
    duplicated: dict[str, int]  # decision id → records on the audit topic (> 1)
    not_replayed: list[str]  # event ids whose retry was applied again (or failed)
    decision_mismatch: list[str]
    audit_records: int
    retry_answers: list[str] = field(default_factory=list)  # how the retries of not_replayed were answered

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.not_replayed or self.decision_mismatch)

    def summary(self) -> str:
        return (f"accepted {self.accepted}, audit records {self.audit_records}, lost {len(self.lost)}, "
                f"duplicated {len(self.duplicated)}, retry applied again {len(self.not_replayed)}, "
                f"decision id mismatch {len(self.decision_mismatch)}"
                + (f"; lost e.g. {self.lost[:5]}" if self.lost else "")
                + (f"; not replayed e.g. {self.not_replayed[:5]}" if self.not_replayed else "")
                + (f"; their retries: {self.retry_answers[:5]}" if self.retry_answers else ""))


async def retry_all(url: str, answers: list[Answer], api_key: str = "dev-key-h1",
                    budget_ms: int = 5000) -> dict[str, dict[str, Any]]:
    """Send every event again (a HIS retry); event id → the answer body."""
    out: dict[str, dict[str, Any]] = {}
    sem = asyncio.Semaphore(20)
    async with _session(url, api_key) as client:
        async def one(a: Answer) -> None:
            async with sem:
                body: dict[str, Any] = {}
                for _ in range(10):
                    try:
                        status, raw = await _post(client, a.event, budget_ms)
                    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                        status, raw = 0, type(exc).__name__
                    body = raw if status == 200 else {"engine_status": f"http-{status}"}
                    if body.get("engine_status") == "evaluated":
                        break
                    await asyncio.sleep(1)
                out[a.event["event_id"]] = body
        await asyncio.gather(*(one(a) for a in answers))
    return out


def verify(answers: list[Answer], audit: list[dict[str, Any]], retries: dict[str, dict[str, Any]],
           institution: str = "H1") -> Verdict:
    """Every accepted event exactly one decision; no duplicate; each retry replayed with the same id."""
    accepted = [a for a in answers if a.status in ACCEPTED]
    mine = {a.event["event_id"] for a in answers}
    per_event: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    per_decision: collections.Counter[str] = collections.Counter()
    for record in audit:
        if record.get("institution_id") == institution and record.get("event_id") in mine:
            per_event[record["event_id"]].append(record)
            per_decision[record["decision_id"]] += 1
    lost = [a.event["event_id"] for a in accepted if not per_event.get(a.event["event_id"])]
    duplicated = {d: n for d, n in per_decision.items() if n > 1}
    not_replayed, mismatch = [], []
    for a in accepted:
        eid = a.event["event_id"]
        retry = retries.get(eid, {})
        if retry.get("engine_status") != "evaluated" or retry.get("replayed") is not True:
            not_replayed.append(eid)
        records = per_event.get(eid, [])
        ids = {r["decision_id"] for r in records} | ({a.decision_id} if a.decision_id else set())
        if retry.get("decision_id"):
            ids.add(retry["decision_id"])
        if len(ids) > 1:
            mismatch.append(eid)
    answers = [f"{retries.get(e, {}).get('engine_status')}/replayed={retries.get(e, {}).get('replayed')}"
               for e in not_replayed]
    return Verdict(len(accepted), lost, duplicated, not_replayed, mismatch,
                   sum(len(v) for v in per_event.values()), answers)

"""The live page (大屏展示): ``GET /dashboard``, fed by the audit topic, updated over SSE.

The ingress reads the audit topic (``settings.decisions_topic``: one record per
decision the workers made, from every ingress instance) with its own aiokafka
consumer *without a group*: every partition assigned, starting at the end, so
each ingress instance shows the whole region live and nothing is committed.
Decisions are aggregated in memory, bounded whatever the traffic:

* per-minute buckets for the last 60 minutes (alerts per rule, decisions and
  alerts per institution — at most ``MAX_KEYS`` keys a bucket, the rest counted
  under ``(其他 other)``);
* a ring of the last 50 alerts, patient ids masked (``privacy.mask``);
* decision latency percentiles over the last 5 minutes, from this ingress's own
  ``presettle_decision_latency_seconds`` histogram (interpolated within buckets,
  as Prometheus' ``histogram_quantile`` does).

``GET /dashboard`` is one self-contained HTML page (inline CSS and JS, no CDN,
no web fonts). It renders ``GET /dashboard/data`` and then follows
``GET /dashboard/stream`` (``text/event-stream``): one ``snapshot`` event when
something changed, at most every ``MIN_PUSH_S``, and at least every
``HEARTBEAT_S``. The page carries no patient id in clear and no data of its own:
the data and the stream need a key or the session cookie of services/ingress/board_auth.py;
an admin sees the region, an institution its own board (:class:`Boards`). Off in production
unless ``PRESETTLE_DASHBOARD_ENABLED``; expose it on the bureau's network only (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from services.common.aio import cancel_and_wait, quietly
from services.common.kafka_security import aiokafka_kwargs
from services.common.privacy import mask
from services.common.settings import Settings
from services.ingress import metrics
from services.ingress.auth import SettingsDep
from services.ingress.board_auth import ALL, COOKIE, BoardScope, key_scope, set_session_cookie

log = logging.getLogger("presettle.dashboard")

WINDOW_MINUTES = 60
LATENCY_WINDOW_S = 300
RECENT = 50
TOP_N = 10
CHART_RULES = 6  # rules drawn in their own colour on the per-minute chart; the rest are "other"
MAX_KEYS = 2000  # distinct institutions kept per minute bucket
MAX_RULES = 500  # distinct rule names remembered
OTHER = "(其他 other)"
MIN_PUSH_S = 0.5
# The page is pushed at most every MIN_PUSH_S, so its consumer need not poll as eagerly as the
# reply consumer: at the 5 ms request-path setting an idle feed cost ~6.5 % of a core per ingress
# (measured against the embedded broker), at 100 ms under 1 %.
FEED_FETCH_WAIT_MS = 100
HEARTBEAT_S = 5.0
MAX_STREAM_S = 300.0  # a stream ends after this long; EventSource reconnects by itself
PAGE = Path(__file__).with_name("static") / "dashboard.html"

SCENES = {
    1: "门诊挂号", 2: "门诊收费登记", 3: "住院登记", 4: "住院收费登记", 5: "住院执行医嘱",
    6: "门诊结算", 7: "门诊预结算", 8: "住院结算", 9: "住院预结算", 10: "购药划卡",
}


def _bump(counter: Counter[str], key: str, n: int = 1) -> None:
    if key in counter or len(counter) < MAX_KEYS:
        counter[key] += n
    else:
        counter[OTHER] += n


@dataclass
class Minute:
    minute: int  # unix time // 60
    decisions: int = 0
    alerted: int = 0  # decisions with at least one alert
    alerts: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    severities: Counter[str] = field(default_factory=Counter)
    inst_decisions: Counter[str] = field(default_factory=Counter)
    inst_alerts: Counter[str] = field(default_factory=Counter)


def histogram_quantile(q: float, bounds: list[float], counts: list[float]) -> float | None:
    """Quantile ``q`` of a histogram given cumulative ``counts`` per upper bound (the last is +Inf)."""
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=False):
        if count >= rank:
            if bound == float("inf"):
                return prev_bound  # as Prometheus: the highest finite bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def _histogram_state() -> tuple[list[float], list[float]]:
    """(upper bounds, cumulative counts) of the ingress decision-latency histogram."""
    bounds: list[float] = []
    counts: list[float] = []
    for family in metrics.DECISION_LATENCY.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                bounds.append(float(sample.labels["le"]))
                counts.append(sample.value)
    return bounds, counts


def _counter_values(counter: Any, label: str | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[sample.labels.get(label, "") if label else ""] = sample.value
    return out


class Board:
    """In-memory aggregation of decisions for the live page (bounded; no patient id in clear)."""

    def __init__(self, clock: Any = time.time, latency_from: Board | None = None) -> None:
        self.clock = clock
        # An institution's board shows the service's latency percentiles (sampled once, on the
        # region-wide board) but not its request counts, which would tell of other institutions.
        self.latency_from = latency_from
        self.scope = "*"  # who this board is for: "*" the region, or one institution id
        self.started = clock()
        self.minutes: deque[Minute] = deque()
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.rule_names: dict[str, dict[str, str]] = {}
        self.decisions_total = 0
        self.alerts_total = 0
        self.version = 0
        self.feed_ready = False
        self.closing = False  # set on server shutdown: open streams end so the server can stop
        self._changed = asyncio.Event()
        # (monotonic time, latency histogram counts, engine_status counts) sampled every tick
        self._samples: deque[tuple[float, list[float], dict[str, float]]] = deque()
        self._bounds: list[float] = []
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self.tick = 0

    # -- input -----------------------------------------------------------
    def _bucket(self, now: float) -> Minute:
        minute = int(now // 60)
        if not self.minutes or self.minutes[-1].minute != minute:
            self.minutes.append(Minute(minute))
        self._expire(minute)
        return self.minutes[-1]

    def _expire(self, minute: int) -> None:
        while self.minutes and self.minutes[0].minute <= minute - WINDOW_MINUTES:
            self.minutes.popleft()

    def add(self, decision: dict[str, Any]) -> None:
        """Fold one audit-topic decision in (call ``notify()`` after a batch)."""
        if decision.get("replayed"):
            return
        now = self.clock()
        bucket = self._bucket(now)
        institution = str(decision.get("institution_id") or "?")
        alerts = decision.get("alerts") or []
        bucket.decisions += 1
        self.decisions_total += 1
        _bump(bucket.inst_decisions, institution)
        if not alerts:
            return
        bucket.alerted += 1
        raw_patient = str(decision.get("patient_id") or "")
        masked = mask(raw_patient) if raw_patient else "—"
        for alert in alerts:
            rule_id = str(alert.get("rule_id") or "?")
            severity = str(alert.get("severity") or "?")
            bucket.alerts += 1
            self.alerts_total += 1
            bucket.rules[rule_id] += 1
            bucket.severities[severity] += 1
            _bump(bucket.inst_alerts, institution)
            if rule_id not in self.rule_names and len(self.rule_names) < MAX_RULES:
                self.rule_names[rule_id] = {
                    "name_zh": str(alert.get("name_zh") or ""), "name_en": str(alert.get("name_en") or ""),
                    "severity": severity,
                }
            message = str(alert.get("message_zh") or "")
            if raw_patient and raw_patient in message:
                message = message.replace(raw_patient, masked)
            self.recent.appendleft({
                "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
                "decided_at": decision.get("decided_at"),
                "decision_id": str(decision.get("decision_id") or ""),
                "institution_id": institution,
                "patient": masked,
                "scene": decision.get("scene"),
                "scene_zh": SCENES.get(decision.get("scene") or 0, ""),
                "rule_id": rule_id,
                "name_zh": str(alert.get("name_zh") or ""),
                "name_en": str(alert.get("name_en") or ""),
                "severity": severity,
                "message_zh": message[:200],
            })

    def notify(self) -> None:
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def close(self) -> None:
        self.closing = True
        self.notify()  # wake every stream so it sees `closing`

    async def wait_change(self, version: int, timeout: float) -> None:
        if self.version != version:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def sample_latency(self) -> None:
        """Record the latency histogram and engine_status counters (called once a second)."""
        bounds, counts = _histogram_state()
        self._bounds = bounds
        now = time.monotonic()
        self._samples.append((now, counts, _counter_values(metrics.ENGINE_STATUS, "engine_status")))
        while len(self._samples) > 2 and self._samples[1][0] <= now - LATENCY_WINDOW_S:
            self._samples.popleft()
        self.tick += 1

    # -- output ----------------------------------------------------------
    def _latency(self) -> dict[str, Any]:
        if self.latency_from is not None:
            shared = self.latency_from._latency()
            return {**shared, "count": None, "engine_status": {}}
        out: dict[str, Any] = {"window_s": LATENCY_WINDOW_S, "count": 0, "p50_ms": None, "p95_ms": None,
                               "p99_ms": None, "engine_status": {}}
        if not self._samples:
            return out
        t_new, new, status_new = self._samples[-1]
        if len(self._samples) > 1:
            _, old, status_old = self._samples[0]
        else:
            old, status_old = [0.0] * len(new), {}
        delta = [max(0.0, n - o) for n, o in zip(new, old, strict=False)]
        out["count"] = int(delta[-1]) if delta else 0
        for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            v = histogram_quantile(q, self._bounds, delta)
            out[key] = None if v is None else round(v * 1000, 2)
        out["engine_status"] = {k: int(v - status_old.get(k, 0.0)) for k, v in status_new.items()}
        return out

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        current = int(now // 60)
        key = (self.version, (self.latency_from or self).tick, current)
        if self._cache and self._cache[0] == key:
            return self._cache[1]
        self._expire(current)
        minutes = list(range(current - WINDOW_MINUTES + 1, current + 1))
        by_minute = {m.minute: m for m in self.minutes}
        rules: Counter[str] = Counter()
        severities: Counter[str] = Counter()
        inst_decisions: Counter[str] = Counter()
        inst_alerts: Counter[str] = Counter()
        decisions = alerts = alerted = 0
        for m in self.minutes:
            rules.update(m.rules)
            severities.update(m.severities)
            inst_decisions.update(m.inst_decisions)
            inst_alerts.update(m.inst_alerts)
            decisions += m.decisions
            alerts += m.alerts
            alerted += m.alerted
        charted = [r for r, _ in rules.most_common(CHART_RULES)]
        series = []
        for rule_id in charted:
            series.append({"rule_id": rule_id, **self._names(rule_id),
                           "counts": [by_minute[m].rules.get(rule_id, 0) if m in by_minute else 0
                                      for m in minutes]})
        if len(rules) > len(charted):
            series.append({"rule_id": OTHER, "name_zh": "其他", "name_en": "other", "severity": "",
                           "counts": [sum(c for r, c in by_minute[m].rules.items() if r not in charted)
                                      if m in by_minute else 0 for m in minutes]})
        last = by_minute.get(current)
        snap = {
            "generated_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            "since": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "version": self.version,
            "feed_ready": self.feed_ready,
            "scope": self.scope,
            "window_minutes": WINDOW_MINUTES,
            "totals": {
                "decisions": decisions, "alerts": alerts, "alerted_decisions": alerted,
                # share of decisions that carried at least one alert
                "alert_rate": round(alerted / decisions, 4) if decisions else 0.0,
                "alerts_this_minute": last.alerts if last else 0,
                "decisions_since_start": self.decisions_total, "alerts_since_start": self.alerts_total,
                "by_severity": dict(severities),
            },
            "per_minute": {
                "minutes": [datetime.fromtimestamp(m * 60, UTC).isoformat(timespec="minutes")
                            for m in minutes],
                "series": series,
            },
            "top_rules": [{"rule_id": r, **self._names(r), "alerts": n} for r, n in rules.most_common(TOP_N)],
            "top_institutions": [
                {"institution_id": i, "alerts": n, "decisions": inst_decisions.get(i, 0)}
                for i, n in inst_alerts.most_common(TOP_N)
            ],
            "latency": self._latency(),
            "recent": list(self.recent),
        }
        self._cache = (key, snap)
        return snap

    def _names(self, rule_id: str) -> dict[str, str]:
        return self.rule_names.get(rule_id, {"name_zh": "", "name_en": "", "severity": ""})


class Boards:
    """The region-wide board (admin keys) and one board per institution that has a key.

    Quacks like a :class:`Board` for the feed (``add``, ``notify``, ``feed_ready``,
    ``sample_latency``, ``close``); :meth:`for_scope` picks the board a caller may see.
    """

    def __init__(self, institutions: Any = (), clock: Any = time.time) -> None:
        self.all = Board(clock)
        self.by_institution = {i: self._institution_board(i) for i in sorted(set(institutions))}
        self._dirty: set[str] = set()

    def _institution_board(self, institution: str) -> Board:
        board = Board(self.all.clock, latency_from=self.all)
        board.scope = institution
        return board

    def for_scope(self, scope: str) -> Board:
        """``ALL`` → the region-wide board; an institution id → its own board (empty when it has none)."""
        if scope == ALL:
            return self.all
        board = self.by_institution.get(scope)
        if board is None:  # a key added since start: an empty board, never another's data
            board = self.by_institution[scope] = self._institution_board(scope)
            board.feed_ready = self.all.feed_ready
        return board

    @property
    def feed_ready(self) -> bool:
        return self.all.feed_ready

    @feed_ready.setter
    def feed_ready(self, value: bool) -> None:
        for board in (self.all, *self.by_institution.values()):
            board.feed_ready = value

    @property
    def closing(self) -> bool:
        return self.all.closing

    def add(self, decision: dict[str, Any]) -> None:
        self.all.add(decision)
        institution = str(decision.get("institution_id") or "")
        board = self.by_institution.get(institution)
        if board is not None:
            board.add(decision)
            self._dirty.add(institution)

    def notify(self) -> None:
        self.all.notify()
        for institution in self._dirty:
            self.by_institution[institution].notify()
        self._dirty.clear()

    def notify_all(self) -> None:
        for board in (self.all, *self.by_institution.values()):
            board.notify()

    def sample_latency(self) -> None:
        self.all.sample_latency()

    def close(self) -> None:
        for board in (self.all, *self.by_institution.values()):
            board.close()


class AuditFeed:
    """Reads every partition of the audit topic from its end, without a consumer group."""

    def __init__(self, settings: Settings, board: Boards) -> None:
        self.settings = settings
        self.board = board
        self.consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()

    async def start(self, wait_s: float = 15.0) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run()), loop.create_task(self._tick())]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait_s)
        if not self._ready.is_set():
            log.warning("live page: audit topic not assigned within %.0f s; retrying in the background", wait_s)

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._close()

    async def _close(self) -> None:
        if self.consumer is not None:
            await quietly(self.consumer.stop(), 5)
            self.consumer = None
        self.board.feed_ready = False
        metrics.DASHBOARD_FEED_UP.set(0)

    async def _assign(self) -> AIOKafkaConsumer:
        s = self.settings
        topic = s.decisions_topic
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False, **aiokafka_kwargs(s),
            fetch_max_wait_ms=max(s.fetch_max_wait_ms, FEED_FETCH_WAIT_MS), auto_offset_reset="latest",
            client_id=f"presettle-dashboard-{s.instance_id}",
        )
        await consumer.start()
        try:
            partitions: set[int] | None = None
            for _ in range(50):
                await consumer.topics()  # refreshes the metadata
                partitions = consumer.partitions_for_topic(topic)
                if partitions:
                    break
                await asyncio.sleep(0.2)
            if not partitions:
                raise RuntimeError(f"topic {topic} has no partitions")
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the end offsets now, so nothing sent from here on is skipped
                await consumer.position(tp)
        except BaseException:
            await quietly(consumer.stop(), 5)
            raise
        return consumer

    async def _run(self) -> None:
        while True:
            try:
                if self.consumer is None:
                    self.consumer = await self._assign()
                    self.board.feed_ready = True
                    metrics.DASHBOARD_FEED_UP.set(1)
                    self._ready.set()
                    self.board.notify_all()
                    log.info("live page: following %s", self.settings.decisions_topic)
                batches = await self.consumer.getmany(timeout_ms=500, max_records=2000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker gone or not ready: aiokafka reconnects; re-assign if needed
                log.warning("live page feed: %s", exc)
                if self.consumer is None or not self.board.feed_ready:
                    await self._close()
                await asyncio.sleep(1.0)
                continue
            n = 0
            for records in batches.values():
                for record in records:
                    try:
                        self.board.add(orjson.loads(record.value))
                        n += 1
                    except Exception:  # a malformed record must not stop the page
                        log.warning("live page: skipped an unreadable audit record at offset %s", record.offset)
            if n:
                metrics.DASHBOARD_DECISIONS.inc(n)
                self.board.notify()

    async def _tick(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.board.sample_latency()
            await asyncio.sleep(1.0)


# -- lifecycle (called from the app's lifespan) --------------------------------
def _end_streams_on_exit_signal(board: Boards) -> None:
    """Chain onto the server's SIGTERM/SIGINT handler so open streams end at shutdown.

    uvicorn waits for every open response before it runs the lifespan shutdown, and an
    event stream never ends by itself: without this, one open live page would hold a
    stopping ingress until it is killed. Only a callable handler (the server's) is
    chained; default handlers are left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(board.close)
            previous(signum, frame)

        signal.signal(sig, handler)


async def start(app: FastAPI, settings: Settings) -> None:
    if not settings.dashboard_on:
        log.info("live page disabled (PRESETTLE_DASHBOARD_ENABLED)")
        return
    board = Boards(settings.institution_keys().values())
    feed = AuditFeed(settings, board)
    app.state.dashboard = board
    app.state.dashboard_feed = feed
    _end_streams_on_exit_signal(board)
    await feed.start()


async def stop(app: FastAPI) -> None:
    board: Boards | None = getattr(app.state, "dashboard", None)
    if board is not None:
        board.close()
    feed: AuditFeed | None = getattr(app.state, "dashboard_feed", None)
    if feed is not None:
        await feed.stop()


# -- routes --------------------------------------------------------------------
router = APIRouter(tags=["dashboard"])


def _boards(request: Request) -> Boards:
    boards: Boards | None = getattr(request.app.state, "dashboard", None)
    if boards is None:  # app built without the lifespan hook: empty boards
        boards = request.app.state.dashboard = Boards(request.app.state.settings.institution_keys().values())
    return boards


async def enabled(settings: SettingsDep) -> None:
    """404 when the live page is switched off (the default in production)."""
    if not settings.dashboard_on:
        raise HTTPException(404, {"error": "not_found", "message": "the live page is disabled "
                                  "(PRESETTLE_DASHBOARD_ENABLED)"})


Enabled = Depends(enabled)


@router.get("/dashboard", response_class=HTMLResponse, dependencies=[Enabled])
async def dashboard_page() -> HTMLResponse:
    """The live page (大屏): alerts per minute by rule, top institutions and rules, latency, recent alerts.

    The page holds no data: it asks for a key (or takes ``?key=`` once) and then reads
    ``/dashboard/data`` and ``/dashboard/stream`` with the session cookie."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})


@router.post("/dashboard/session", dependencies=[Enabled],
             responses={401: {"description": "missing or unknown key"}, 404: {"description": "disabled"}})
async def dashboard_login(request: Request, scope: Annotated[str, Depends(key_scope)]) -> Response:
    """Exchange an ``X-API-Key`` (institution or admin) for the live page's session cookie."""
    response = Response(orjson.dumps({"scope": scope}), media_type="application/json",
                        headers={"Cache-Control": "no-store"})
    set_session_cookie(response, request, scope)
    return response


@router.delete("/dashboard/session", dependencies=[Enabled], status_code=204)
async def dashboard_logout() -> Response:
    """End the live page's session (clears the cookie)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


@router.get("/dashboard/data", dependencies=[Enabled],
            responses={401: {"description": "no key or session"}, 404: {"description": "disabled"}})
async def dashboard_data(request: Request, scope: BoardScope) -> Response:
    """The live page's current snapshot as JSON (patient ids masked; an institution key sees its own)."""
    return Response(orjson.dumps(_boards(request).for_scope(scope).snapshot()), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def ledger(store: Any, scope: str) -> dict[str, Any]:
    """Today's and this month's totals and the per-rule feedback rates, from the decision log (a restart keeps
    them: the live aggregates above are in memory and start empty)."""
    from services.contracts.common import CST
    from services.decisionlog.records import utc_iso
    from services.decisionlog.store import EVERYTHING, Scope

    where = EVERYTHING if scope == ALL else Scope(institution=scope)
    today = datetime.now(CST).date()
    month = today.replace(day=1)
    month_start = utc_iso(datetime(month.year, month.month, 1, tzinfo=CST).isoformat())
    rules = []
    for r in store.summary("rule", where, month_start, None):
        alerts = r["alerts"] or 0
        fb = r["feedback"]
        rules.append({"rule_id": r["rule"], "alerts": alerts, "accepted": fb["accepted"], "overridden": fb["overridden"],
                      "accept_rate": round(fb["accepted"] / alerts, 4) if alerts else 0.0,
                      "override_rate": round(fb["overridden"] / alerts, 4) if alerts else 0.0})
    rules.sort(key=lambda r: (-r["alerts"], r["rule_id"]))
    return {"scope": scope, "today": store.totals(where, today.isoformat()),
            "month": store.totals(where, month.isoformat()), "rules": rules[:TOP_N]}


@router.get("/dashboard/ledger", dependencies=[Enabled],
            responses={401: {"description": "no key or session"}, 404: {"description": "disabled"},
                       503: {"description": "the decision log cannot be reached"}})
async def dashboard_ledger(request: Request, scope: BoardScope) -> Response:
    """Today's and this month's decisions, alerts and amount at stake, and the accept / override rate per
    rule this month — from the decision log, so a restart keeps them."""
    from starlette.concurrency import run_in_threadpool

    from services.ingress.decisions import get_store

    store = await run_in_threadpool(get_store, request)
    body = await run_in_threadpool(ledger, store, scope)
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})


@router.get("/dashboard/stream", dependencies=[Enabled],
            responses={401: {"description": "no key or session"}, 404: {"description": "disabled"}})
async def dashboard_stream(request: Request, scope: BoardScope) -> StreamingResponse:
    """Server-sent events: a ``snapshot`` event whenever the board changes (≤ 2/s), at least every 5 s."""
    board = _boards(request).for_scope(scope)

    async def events() -> AsyncIterator[bytes]:
        metrics.DASHBOARD_CLIENTS.inc()
        try:
            yield b"retry: 2000\n\n"
            sent_version, sent_at = -1, 0.0
            opened = time.monotonic()
            while True:
                if board.closing or time.monotonic() - opened > MAX_STREAM_S or await request.is_disconnected():
                    return
                now = time.monotonic()
                if board.version != sent_version or now - sent_at >= HEARTBEAT_S:
                    sent_version, sent_at = board.version, now
                    yield b"event: snapshot\ndata: " + orjson.dumps(board.snapshot()) + b"\n\n"
                    await asyncio.sleep(MIN_PUSH_S)
                await board.wait_change(sent_version, timeout=max(0.05, HEARTBEAT_S - (time.monotonic() - sent_at)))
        finally:
            metrics.DASHBOARD_CLIENTS.dec()

    return StreamingResponse(
        events(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"},
    )

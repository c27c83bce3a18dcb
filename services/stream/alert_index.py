"""The worker's alert index: feedback is accepted only for alerts issued to the caller's institution.

Where the truth lives: a faust table keyed by decision id (changelog-backed, so it
survives worker restarts and moves with its partition in a rebalance), fed by one
topic keyed by decision id that carries, in order, ``issued`` records (from the
event agent) and ``feedback`` requests (from any ingress replica, with reply
headers). One partition has one owner, so "once per alert and outcome" needs no
lock and holds across ingress restarts and replicas. The arithmetic is pure:
services/rules/alert_index.py. See docs/integration.md, *Feedback ownership*.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson

from services.common.privacy import pseudonym
from services.contracts import envelope as env
from services.rules import alert_index as index
from services.stream import metrics, store
from services.stream.transport import mark_finished

log = logging.getLogger("presettle.worker")


def install(app: faust.App, settings: Any, reply: Any, header_map: Any, raw: dict[str, Any]) -> Any:
    """Declare the topic, the table, the agent and the eviction timer on ``app``; return ``issue``."""
    topic = app.topic(settings.alert_index_topic, **raw)
    feedback_topic = app.topic(settings.feedback_topic, **raw)
    table = app.Table(
        "alert_index", default=None, partitions=settings.partitions, key_type=bytes, value_type=bytes,
        help="Alerts issued per decision id, and the feedback outcomes recorded for them.",
    )

    async def issue(decision: dict[str, Any], event: dict[str, Any] | None = None) -> None:
        """Record the alerts of a new decision; returns once the broker has them (before the HIS hears).
        With the ``event``, what an ``accepted`` feedback needs to withdraw an alert's lines goes too."""
        alert_ids = [a["alert_id"] for a in decision["alerts"] if a.get("alert_id")]
        if not alert_ids:
            return
        record = {"kind": "issued", "institution_id": decision["institution_id"], "alert_ids": alert_ids,
                  "at": time.time()}
        if event is not None:
            basis = index.withdrawal_basis(event, decision["alerts"])
            if basis is not None:
                record["withdraw"] = basis
        delivery = await topic.send(key=decision["decision_id"].encode(), value=orjson.dumps(record))
        await delivery  # acknowledged: feedback on these alerts can only come after it

    async def on_feedback(key: bytes, request: dict[str, Any], headers: dict[str, bytes]) -> None:
        entry = _load(table.get(key))
        new, status = index.feedback(entry, request["institution_id"], request["alert_id"], request["outcome"])
        if status == "recorded":
            # The record first, then the table: a crash between them re-sends the record on the
            # client's retry (at least once; (alert_id, outcome) identifies it), never loses it.
            delivery = await feedback_topic.send(key=key, value=orjson.dumps(request["record"]))
            await delivery
            if request["outcome"] == "accepted":
                await withdraw(entry, request["alert_id"])
            table[key] = orjson.dumps(new)
        metrics.FEEDBACK_CHECKS.labels(status).inc()
        await reply(headers, orjson.dumps({"feedback": {"status": status}}))

    async def withdraw(entry: dict[str, Any] | None, alert_id: str) -> None:
        """返回修改: the doctor changed the order, so the alert's lines were never supplied or charged —
        a cancellation of them goes to the patient's partition (applied without evaluation, as
        history; its id comes from the alert id, so a re-sent one is applied once)."""
        event = index.withdrawal_event(entry, alert_id)
        if event is None:
            return
        delivery = await app.producer.send(settings.events_topic, event["patient"]["id"].encode(),
                                           orjson.dumps(event), None, None, env.history_headers())
        await delivery
        metrics.FEEDBACK_WITHDRAWALS.inc()

    @app.agent(topic, name="alert_index")
    async def alert_index_agent(stream: Any) -> None:
        async for ev in stream.events():
            headers = header_map(ev.message)
            try:
                record = orjson.loads(ev.value)
                if record.get("kind") == "issued":
                    table[ev.key] = orjson.dumps(index.issue(_load(table.get(ev.key)), record["institution_id"],
                                                             record["alert_ids"], record["at"],
                                                             record.get("withdraw")))
                elif record.get("kind") == "feedback":
                    await on_feedback(ev.key, record, headers)
            except Exception as exc:  # a malformed record must not stop the partition
                metrics.FAILURES.labels(type(exc).__name__).inc()
                log.exception("alert index: failed at offset %s (decision %s)", ev.message.offset,
                                  pseudonym(ev.key.decode(errors="replace")) if ev.key else "-")
                await reply(headers, orjson.dumps({"error": f"{type(exc).__name__}: feedback not checked"}))
            # Counted for the commit only once handled (services/stream/transport.py: a message
            # faust skips in a rebalance is read again, never committed unprocessed).
            mark_finished(ev.message)

    @app.timer(interval=3600.0)
    async def evict_old_alerts() -> None:
        evicted = evict(table, time.time())
        if evicted:
            log.info("alert index: evicted %d expired entr%s", evicted, "y" if evicted == 1 else "ies")

    return issue


def evict(table: Any, now: float) -> int:
    """Delete the expired entries of this worker's active partitions (store and changelog); return how many."""
    evicted = 0
    for partition, key, value in store.partitioned_items(table):
        entry = _load(value)
        if entry is None or index.expired(entry, now):
            store.delete(table, partition, key)  # not `del table[key]`: a timer has no current event
            evicted += 1
    return evicted


def _load(value: bytes | None) -> dict[str, Any] | None:
    return orjson.loads(value) if value else None

"""The stream worker: one faust agent holding per-patient state.

Events (from the ingress) and patient-status updates (from the bureau) arrive
on two topics keyed by patient id with the same partition count as the state
table's changelog. One agent reads both, so a patient's state has a single
writer. Per event it: loads the state, answers a retry from the recorded
decision, otherwise evaluates the rules (pure code, services.rules) and
re-assigns the state once (one changelog record), then replies to the waiting
ingress and writes the decision to the audit topic.

Run: ``python -m services.stream`` (see __main__.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime, timezone
from typing import Any

import faust
import orjson

from services.common.privacy import pseudonym
from services.common.settings import get_settings
from services.contracts import envelope as env
from services.contracts.decision import audit_record
from services.contracts.topics import STATE_TABLE
from services.rules import decision as dec
from services.rules import state as state_codec
from services.rules.engine import Engine
from services.stream import metrics
from services.stream.transport import mark_finished

log = logging.getLogger("presettle.worker")

settings = get_settings()
WORKER_ID = settings.worker_name or f"worker-{os.getpid()}"

app = faust.App(
    settings.worker_app_id,
    broker=f"presettle://{settings.bootstrap}",
    store="memory://",
    datadir=settings.data_dir,  # faust's per-app directory (the table itself lives in memory)
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    # Join the group in seconds, not ~30 s (see ../shared/stack.md).
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    broker_rebalance_timeout=6,
    broker_request_timeout=30,
    producer_linger=0.0,
    producer_acks=1,
    web_enabled=False,
    table_cleanup_interval=3600.0,
    consumer_auto_offset_reset="earliest",
)

RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

inputs = app.topic(settings.events_topic, settings.status_topic, **RAW)
decisions_topic = app.topic(settings.decisions_topic, **RAW)

patient_state = app.Table(
    STATE_TABLE,  # its changelog: contracts.topics.state_changelog_topic
    default=None,
    partitions=settings.partitions,
    help="Per-patient rule state (services.rules.state), keyed by patient id.",
    key_type=bytes,  # bytes → faust's "raw" codec: we serialize with orjson ourselves
    value_type=bytes,
)

engine = Engine.load()


# Nobody waits for a reply older than this (a worker catching up after an outage).
REPLY_MAX_AGE_S = 60.0
REPLY_SEND_TIMEOUT_S = 1.0


async def _reply(headers: dict[str, bytes], body: bytes) -> None:
    """Best effort: a reply that cannot be sent is counted, never holds up the partition."""
    reply_to = headers.get(env.REPLY_TO)
    corr = headers.get(env.CORRELATION_ID)
    if not reply_to or not corr:
        return  # fire-and-forget producer (replay, batch): nobody waits
    sent_at = headers.get(env.SENT_AT)
    try:
        if sent_at and time.time() - float(sent_at) > REPLY_MAX_AGE_S:
            metrics.REPLIES_SKIPPED.labels("stale").inc()
            return
        partition = int(headers.get(env.REPLY_PARTITION) or 0)
        await asyncio.wait_for(
            app.producer.send(reply_to.decode(), None, body, partition, None, [(env.CORRELATION_ID, corr)]),
            REPLY_SEND_TIMEOUT_S,
        )
    except Exception as exc:  # bad headers, a reply topic gone, a full buffer
        metrics.REPLIES_SKIPPED.labels(type(exc).__name__).inc()


async def _on_event(key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
    t0 = time.perf_counter()
    sent_at = headers.get(env.SENT_AT)
    if sent_at:
        metrics.QUEUE_SECONDS.observe(max(0.0, time.time() - float(sent_at)))
    event = orjson.loads(value)
    new_bytes, outcome = dec.handle_event(engine, patient_state.get(key), event)
    if new_bytes is not None:
        patient_state[key] = new_bytes  # the one changelog write for this event
        metrics.STATE_BYTES.observe(len(new_bytes))
    engine_s = time.perf_counter() - t0
    decision = audit_record(
        event, outcome["decision_id"], outcome["alerts"], outcome["replayed"], round(engine_s * 1000, 3),
        datetime.now(timezone.utc).isoformat(), WORKER_ID,
    )
    body = orjson.dumps(decision)
    if not outcome["replayed"]:
        # The audit trail first: every decision once (at least once across a
        # crash; the decision id is deterministic, so consumers can de-duplicate).
        await decisions_topic.send(key=key, value=body)
    await _reply(headers, env.decision_reply(body))
    metrics.record_decision(event["scene"], outcome["alerts"], engine_s, outcome["replayed"])


def _on_history(key: bytes, value: bytes) -> None:
    new_bytes, outcome = dec.handle_event(engine, patient_state.get(key), orjson.loads(value), evaluate=False)
    if new_bytes is not None:
        patient_state[key] = new_bytes
        metrics.STATE_BYTES.observe(len(new_bytes))
    metrics.HISTORY.labels("replayed" if outcome["replayed"] else "applied").inc()


def _on_status(key: bytes, value: bytes) -> None:
    status = orjson.loads(value)
    state = state_codec.loads(patient_state.get(key))
    patient_state[key] = state_codec.dumps(engine.apply_status(state, status))
    metrics.STATUS_UPDATES.inc()


# Last offset processed per (topic, partition); the lag gauge is refreshed on a
# timer rather than per message, to keep the hot path short.
_positions: dict[tuple[str, int], int] = {}


@app.timer(interval=2.0)
async def refresh_lag() -> None:
    consumer = app.consumer
    for (topic, partition), offset in list(_positions.items()):
        try:
            highwater = consumer.highwater(faust.types.TP(topic, partition))
        except Exception:  # partition revoked in a rebalance: its lag is another worker's now
            _positions.pop((topic, partition), None)
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(topic, str(partition))
            continue
        if highwater is not None:
            metrics.LAG.labels(topic, str(partition)).set(max(0, highwater - offset - 1))


@app.agent(inputs)
async def process(stream: Any) -> None:
    async for ev in stream.events():
        message = ev.message
        headers = env.header_map(message.headers)
        try:
            _positions[(message.topic, message.partition)] = message.offset
            kind = env.kind_of(headers, message.topic, settings.status_topic)
            if kind is env.Kind.event:
                await _on_event(ev.key, ev.value, headers)
            elif kind is env.Kind.probe:
                await _reply(headers, orjson.dumps(env.probe_reply(message.partition, WORKER_ID)))
            elif kind is env.Kind.history:
                _on_history(ev.key, ev.value)
            else:
                _on_status(ev.key, ev.value)
                await _reply(headers, orjson.dumps(env.status_reply(WORKER_ID)))
        except Exception as exc:  # a poison message must not stop the partition
            metrics.FAILURES.labels(type(exc).__name__).inc()
            who = pseudonym(ev.key.decode(errors="replace")) if ev.key else "-"
            log.exception("failed to process a message for %s at %s[%s]@%s",
                          who, message.topic, message.partition, message.offset)
            await _reply(headers, orjson.dumps(env.error_reply(
                f"{type(exc).__name__}: the engine could not evaluate this event")))
        # Only now may its offset be committed (services/stream/transport.py: faust would
        # otherwise commit messages it skipped during a rebalance).
        mark_finished(message)

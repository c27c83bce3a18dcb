"""The stream worker: one faust agent holding per-patient state.

Events (from the ingress) and patient-status updates (from the bureau) arrive
on two topics keyed by patient id with the same partition count as the state
table's changelog. One agent reads both, so a patient's state has a single
writer.

**Exactly one effect per event** (at-least-once delivery, idempotent effects).
Per event the worker:

1. loads the state; a retry (same institution and event id) is answered from
   the recorded decision and not applied again;
2. otherwise evaluates the rules (pure code, services.rules) and writes the new
   state — the event recorded with a *pending-audit marker* ``[source offset,
   audit offset]`` — and waits until the changelog has it;
3. writes the decision to the audit topic (partition = the event's partition,
   so this worker is its only writer) and, at the same time, replies to the
   waiting ingress; it waits until the audit record is acknowledged;
4. only then marks the message finished, so its offset can be committed
   (services/stream/transport.py: faust would otherwise commit messages it
   skipped during a rebalance — the cause of the lost decisions in issue 9).

A crash anywhere re-reads the message (its offset was not committed). If the
restored state has no record of it, it is evaluated again: its audit record was
never written (step 3 follows step 2). If the state records it with an
unconfirmed marker, the audit partition is read from the marker's offset: the
decision is re-sent only when its record is not there. A marker is confirmed
once this process saw the audit record acknowledged, or once the event's offset
is below the partition's committed offset; confirmed markers are dropped on the
patient's next state write. A record read again by the *same* process (the
transport seeks back over an unfinished offset) while its audit record is still
being written waits for that write instead of looking for the record (which is
not on the topic yet) and writing it a second time.

Records the worker cannot process (malformed, a Kafka key that is not the
record's patient, an unknown kind, an engine failure) go to the dead-letter
topic with the reason and origin in headers (services/stream/deadletter.py).
Replies go only to this deployment's reply topics (``<prefix>.replies.<id>``).

Run: ``python -m services.stream`` (see __main__.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import logging
import os
import re
import time
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any

import faust
import orjson

from services.common import logs, partition_ends
from services.common.kafka_security import aiokafka_kwargs, faust_credentials
from services.common.privacy import pseudonym
from services.common.provider_feed import ProviderFeed
from services.common.rulebase_feed import RulebaseFeed
from services.common.settings import get_settings
from services.contracts import envelope as env
from services.contracts.decision import audit_record, retrospective_record
from services.contracts.topics import STATE_TABLE
from services.rules import decision as dec
from services.rules import state as state_codec
from services.stream import alert_index, deadletter, metrics, readiness, store
from services.stream.transport import mark_done, mark_finished, mark_started

log = logging.getLogger("presettle.worker")

settings = get_settings()
WORKER_ID = settings.worker_name or f"worker-{os.getpid()}"

store.register()  # rocksdict:// → services/stream/store.py

if settings.tracemalloc_file:  # debug only: allocation reports (services/stream/memtrace.py)
    from services.stream import memtrace

    _tracer = memtrace.Tracer(settings.tracemalloc_file, sizes=lambda: bookkeeping_sizes())
    _tracer.start()

app = faust.App(
    settings.worker_app_id,
    broker=f"presettle://{settings.bootstrap}",
    store=settings.store,  # rocksdict:// (RocksDB files under the data directory) or memory://
    # This worker's own directory under PRESETTLE_DATA_DIR, locked while it runs (services/stream/store.py).
    datadir=str(store.claim_data_dir(settings.data_dir, settings.worker_name)),
    table_standby_replicas=settings.standby_replicas,
    # A persisted offset past the changelog's end (an embedded broker restarted empty) is handled
    # by the store (it re-seeds the changelog), not by faust's check (which crashes the worker).
    recovery_consistency_check=False,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    # Join the group in seconds, not ~30 s (see ../shared/stack.md).
    broker_session_timeout=6,
    broker_heartbeat_interval=1,
    broker_rebalance_timeout=6,
    broker_request_timeout=30,
    # How long a record batch may wait for delivery (faust's default is 20 minutes). faust flushes
    # the producer before every commit, so an undeliverable batch holds up the commits (and the
    # stream) for this long at most; 120 s is Apache Kafka's own delivery.timeout.ms.
    producer_request_timeout=120.0,
    producer_linger=0.0,
    producer_acks=1,
    web_enabled=False,
    table_cleanup_interval=3600.0,
    consumer_auto_offset_reset="earliest",
    broker_credentials=faust_credentials(settings),  # TLS / SASL (services/common/kafka_security.py)
)

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}

inputs = app.topic(settings.events_topic, settings.status_topic, **RAW)

patient_state = app.Table(
    STATE_TABLE,  # its changelog: contracts.topics.state_changelog_topic
    default=None,
    partitions=settings.partitions,
    help="Per-patient rule state (services.rules.state), keyed by patient id.",
    key_type=bytes,  # bytes → faust's "raw" codec: we serialize with orjson ourselves
    value_type=bytes,
)

# The rule base served: the packaged one until the rule-base topic has been read (before the
# first event), then whichever revision is active there, switched without a restart
# (services/common/rulebase_feed.py). Read once per event: one decision, one revision.
rulebase = RulebaseFeed(settings, WORKER_ID)
# Institution and doctor status timelines (every worker holds all of them: events are partitioned by
# patient), read to the topic's end before the first event, then followed (services/common/provider_feed.py).
providers = ProviderFeed(settings, WORKER_ID)


async def _start_feed(feed: Any, topic: str) -> None:
    """Start a broadcast feed, retrying while its topic is not readable (the agent waits for ``feed.ready``)."""
    while True:
        try:
            await feed.start()
            return
        except Exception as exc:  # broker not reachable yet
            log.warning("%s topic not readable yet (%r); retrying", topic, exc)
            await asyncio.sleep(1.0)


@app.task
async def start_rulebase() -> None:
    await _start_feed(rulebase, "rule-base")


def loop_names() -> dict[str, str]:
    """The event loop classes of the main loop and of faust's consumer thread (uvloop expected on both)."""
    thread = getattr(app.consumer, "_thread", None)
    thread_loop = getattr(thread, "thread_loop", None)
    return {"main": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "consumer_thread": type(thread_loop).__module__.split(".")[0] if thread_loop else "-"}


if settings.tracemalloc_file:
    @app.task
    async def trace_memory() -> None:
        await _tracer.run(settings.tracemalloc_interval_s)


@app.task
async def start_providers() -> None:
    await _start_feed(providers, "provider-status")


# Young-generation collections every 10,000 net allocations instead of CPython's 700: the worker
# allocates thousands of objects per event, so at 700 the collector ran several times per event (and
# its older generations in turn). Start-up objects are frozen first (never traversed again).
# bench_worker, 6 alternated rounds at load avg 4-7: 1.82 ms worker CPU per event (median) against
# 2.11 with the defaults; gc.freeze alone made no difference (2.10 against 1.92 in its rounds).
GC_GEN0_THRESHOLD = 10_000


@app.task
async def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


@app.task
async def report_loops() -> None:
    await asyncio.sleep(0)
    log.info("event loops: %s", loop_names())


Completion = Coroutine[Any, Any, None] | None


class Poison(Exception):
    """This record can never be processed as it is: it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


# Nobody waits for a reply older than this (a worker catching up after an outage).
REPLY_MAX_AGE_S = 60.0
REPLY_SEND_TIMEOUT_S = 1.0
# A reply to a topic the producer has no metadata for yet waits this long for it (off the agent's path):
# a loaded broker answers a metadata request in more than a second, and a topic given up on is
# dropped for MISSING_TOPIC_TTL_S (every reply to a freshly rotated reply topic would be lost).
REPLY_LOOKUP_TIMEOUT_S = 5.0
# How long one produce (state, audit, dead letter) may take before the message is
# left unfinished (not committed: read again after a restart or rebalance).
PRODUCE_TIMEOUT_S = 30.0
# Replies go only to this deployment's reply topics (Settings.reply_topic).
REPLY_TOPIC = re.compile(rf"{re.escape(settings.topic_prefix)}\.replies\.[A-Za-z0-9_-]+")
# On audit records: the decision id, so a recovery can look for it without decoding values.
DECISION_ID_HEADER = "decision_id"
KINDS = frozenset(k.value for k in env.Kind)


def sent_at(headers: dict[str, bytes]) -> float | None:
    """The ingress's send time; None (unknown age) when absent or unreadable — never an error."""
    raw = headers.get(env.SENT_AT)
    if not raw:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        metrics.BAD_SENT_AT.inc()
        return None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, ±inf
        metrics.BAD_SENT_AT.inc()
        return None
    return value


# Reply topics found missing: replies to them are dropped at once (counted, reason "missing-topic")
# until the entry expires, instead of each waiting for the topic's metadata (aiokafka asks again
# and again until the send times out: the agent then decided about one event per second).
MISSING_TOPIC_TTL_S = 10.0
MISSING_TOPICS_MAX = 1024
_missing_topics: collections.OrderedDict[str, float] = collections.OrderedDict()
# Replies to topics the producer has no metadata for yet, sent off the agent's path; bounded.
REPLY_LOOKUPS_MAX = 256
_reply_lookups: set[asyncio.Task[None]] = set()


def _aiokafka_producer() -> Any:
    """The worker's aiokafka producer (under faust's), or None before it started."""
    return getattr(app.producer, "_producer", None)


def _producer_client() -> Any:
    """The worker producer's aiokafka client (its cluster metadata), or None before it started."""
    return getattr(_aiokafka_producer(), "client", None)


def topics_with_batches(producer: Any) -> set[str]:
    """Topics an aiokafka producer holds undelivered record batches for (its accumulator).

    Such a topic must stay in the producer's metadata: a batch whose partition has no known
    leader waits for one until it expires (``producer_request_timeout``), and faust's commit
    flushes the producer first, so one stranded batch holds up every commit and whatever waits for
    one (the consumer's fetch loop does, every ``broker_commit_every`` messages): the worker stalled
    after a reply topic rotation in the chaos suite (stop 21)."""
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is None:
        return set()
    pending = {tp.topic for tp in list(getattr(accumulator, "_batches", {}))}
    pending.update(batch.tp.topic for batch in list(getattr(accumulator, "_pending_batches", ())))
    return pending


def refollow_stranded(client: Any, pending: set[str]) -> set[str]:
    """Follow again every topic of ``pending`` (``topics_with_batches``) that the producer's client no
    longer follows (its metadata then names the partitions' leaders and the batches go out); the
    topics so followed."""
    stranded = stranded_topics(set(getattr(client, "_topics", ())), pending)
    for topic in sorted(stranded):
        client.add_topic(topic)
    return stranded


# Reply topics replied to, with when (monotonic): an ingress replaces its reply topic on the
# embedded broker (services/ingress/engine_client.py, *Reply topic rotation*) and ingress instances
# come and go, so the producer's metadata must not track every reply topic it ever saw — the
# embedded broker would even re-create a deleted topic named in a metadata request.
# An ingress deletes a replaced reply topic PRESETTLE_REPLY_TOPIC_DELETE_AFTER_S after its last reply;
# the worker stops tracking it well before.
_reply_used: dict[str, float] = {}
REPLY_TOPIC_IDLE_S = settings.reply_topic_delete_after_s / 2


def idle_reply_topics(tracked: set[str], used: dict[str, float], now: float,
                      pending: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """Reply topics the producer tracks that nobody was replied to (or asked about) for
    REPLY_TOPIC_IDLE_S and that it holds no undelivered batch for (pure)."""
    return {t for t in tracked
            if REPLY_TOPIC.fullmatch(t) and t not in pending and now - used.get(t, -1e18) > REPLY_TOPIC_IDLE_S}


def stranded_topics(tracked: set[str], pending: set[str]) -> set[str]:
    """Topics with undelivered batches that the producer's metadata no longer follows (pure)."""
    return pending - tracked


@app.timer(interval=5.0)
async def forget_idle_reply_topics() -> None:
    producer = _aiokafka_producer()
    client = getattr(producer, "client", None)
    if client is None:
        return
    pending = topics_with_batches(producer)
    stranded = refollow_stranded(client, pending)
    if stranded:
        # Not expected (nothing drops a topic with batches any more), but a batch without a leader
        # would hold up every commit until it expired.
        log.warning("the producer held records for %d topic(s) it no longer followed; following them again",
                    len(stranded))
        metrics.REPLY_TOPICS_REFOLLOWED.inc(len(stranded))
    now = time.monotonic()
    tracked = set(getattr(client, "_topics", ()))
    idle = idle_reply_topics(tracked, _reply_used, now, pending)
    for topic in [t for t, at in _reply_used.items() if now - at > REPLY_TOPIC_IDLE_S]:
        del _reply_used[topic]
    keep = tracked - idle
    if idle and keep:  # never an empty set: aiokafka would then track every topic of the cluster
        client.set_topics(sorted(keep))
        metrics.REPLY_TOPICS_FORGOTTEN.inc(len(idle))


def topic_missing(topic: str, now: float) -> bool:
    expires = _missing_topics.get(topic)
    if expires is None:
        return False
    if expires <= now:
        del _missing_topics[topic]
        return False
    return True


def remember_missing(topic: str, now: float) -> None:
    _missing_topics[topic] = now + MISSING_TOPIC_TTL_S
    _missing_topics.move_to_end(topic)
    while len(_missing_topics) > MISSING_TOPICS_MAX:
        _missing_topics.popitem(last=False)
    client = _producer_client()
    # aiokafka keeps asking the broker about every topic it was asked to send to; a topic it holds
    # records for stays (another reply's lookup found it meanwhile: see topics_with_batches).
    if client is not None and topic not in topics_with_batches(_aiokafka_producer()):
        client._topics.discard(topic)


async def _reply(headers: dict[str, bytes], body: bytes) -> None:
    """Best effort: a reply that cannot be sent is counted, never holds up the partition."""
    reply_to = headers.get(env.REPLY_TO)
    corr = headers.get(env.CORRELATION_ID)
    if not reply_to or not corr:
        return  # fire-and-forget producer (replay, batch): nobody waits
    try:
        topic = reply_to.decode()
    except UnicodeDecodeError:
        topic = ""
    if not REPLY_TOPIC.fullmatch(topic):
        metrics.REPLIES_REFUSED.inc()
        return
    at = sent_at(headers)
    if at is not None and time.time() - at > REPLY_MAX_AGE_S:
        metrics.REPLIES_SKIPPED.labels("stale").inc()
        return
    if topic_missing(topic, time.monotonic()):
        metrics.REPLIES_SKIPPED.labels("missing-topic").inc()
        return
    try:
        partition = int(headers.get(env.REPLY_PARTITION) or 0)
    except ValueError:
        metrics.REPLIES_SKIPPED.labels("ValueError").inc()
        return
    client = _producer_client()
    if client is not None and client.cluster.partitions_for_topic(topic) is None:
        # No metadata for this topic yet (a new ingress, or a topic that does not exist): look it up
        # off the agent's path, so a missing topic never slows the events behind this one.
        if len(_reply_lookups) >= REPLY_LOOKUPS_MAX:
            metrics.REPLIES_SKIPPED.labels("missing-topic").inc()
            return
        # The topic's idle clock starts now, not at the first reply sent: the metadata lookup this
        # starts may outlast the forget timer's tick, which would drop the topic again meanwhile.
        _reply_used.setdefault(topic, time.monotonic())
        task = asyncio.get_running_loop().create_task(_send_reply(topic, partition, corr, body, lookup=True))
        _reply_lookups.add(task)
        task.add_done_callback(_reply_lookups.discard)
        return
    await _send_reply(topic, partition, corr, body)


async def _send_reply(topic: str, partition: int, corr: bytes, body: bytes, lookup: bool = False) -> None:
    try:
        await asyncio.wait_for(
            app.producer.send(topic, None, body, partition, None, [(env.CORRELATION_ID, corr)]),
            REPLY_LOOKUP_TIMEOUT_S if lookup else REPLY_SEND_TIMEOUT_S,
        )
        _reply_used[topic] = time.monotonic()
    except Exception as exc:  # bad headers, a reply topic gone, a full buffer
        client = _producer_client()
        if lookup and (client is None or client.cluster.partitions_for_topic(topic) is None):
            remember_missing(topic, time.monotonic())
            metrics.REPLIES_SKIPPED.labels("missing-topic").inc()
            log.warning("reply topic %s does not exist: replies to it are dropped for %.0f s (decisions "
                        "are still recorded)", topic, MISSING_TOPIC_TTL_S)
        else:
            metrics.REPLIES_SKIPPED.labels(type(exc).__name__).inc()


async def _produce(topic: str, key: bytes | None, value: bytes, partition: int | None,
                   headers: list[tuple[str, bytes]] | None = None) -> Any:
    """Send one record and wait for the broker's acknowledgement (its RecordMetadata)."""
    async def send() -> Any:
        delivery = await app.producer.send(topic, key, value, partition, None, headers)
        return await delivery
    return await asyncio.wait_for(send(), PRODUCE_TIMEOUT_S)


# -- audit bookkeeping ----------------------------------------------------------------
# Decisions whose audit record this process saw acknowledged (bounded, oldest dropped).
_confirmed: collections.OrderedDict[str, None] = collections.OrderedDict()
# Only needed until the commit passes an event (every few seconds; then the commit head confirms it),
# and a miss only costs a look at the audit topic: 20,000 ids is ~4 MB.
CONFIRMED_MAX = 20_000
# Per audit partition: (consumer generation, the lowest offset the next audit record can get).
_audit_next: dict[int, tuple[int, int]] = {}
_audit_reader: Any = None


# Decisions of this process whose audit record is being written: the future says whether it was.
_audit_in_flight: dict[str, asyncio.Future[bool]] = {}


def _confirm(decision_id: str) -> None:
    _confirmed[decision_id] = None
    if len(_confirmed) > CONFIRMED_MAX:
        _confirmed.popitem(last=False)


def _confirmed_for(partition: int) -> Any:
    head = app.consumer._commit_head(faust.types.TP(settings.events_topic, partition))  # type: ignore[attr-defined]  # our Consumer (transport.py)

    def confirmed(decision_id: str, marker: dec.Pending) -> bool:
        return decision_id in _confirmed or (head is not None and marker[0] < head)
    return confirmed


async def _reader() -> Any:
    global _audit_reader
    if _audit_reader is None:
        from aiokafka import AIOKafkaConsumer

        reader = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False,
                                  fetch_max_wait_ms=settings.fetch_max_wait_ms, client_id=f"{WORKER_ID}-audit",
                                  **aiokafka_kwargs(settings))
        await reader.start()
        _audit_reader = reader
    return _audit_reader


async def _audit_offset(partition: int) -> int:
    """A lower bound for the offset the next audit record on ``partition`` gets."""
    generation = app.consumer_generation_id
    known = _audit_next.get(partition)
    if known is not None and known[0] == generation:
        return known[1]
    from aiokafka import TopicPartition

    reader = await _reader()
    tp = TopicPartition(settings.decisions_topic, partition)
    end = (await asyncio.wait_for(reader.end_offsets([tp]), PRODUCE_TIMEOUT_S))[tp]
    _audit_next[partition] = (generation, end)
    return int(end)


async def _audit_has(partition: int, start: int, decision_id: str) -> bool:
    """Whether the audit partition holds ``decision_id`` at or after offset ``start``."""
    from aiokafka import TopicPartition

    reader = await _reader()
    tp = TopicPartition(settings.decisions_topic, partition)
    reader.assign([tp])
    # The offset after the last record (on Tansu, ListOffsets stops at the last batch's first
    # record: an audit record later in that batch would be missed and written twice).
    end = (await partition_ends.end_offsets(reader, [tp], PRODUCE_TIMEOUT_S))[tp]
    if end <= start:
        return False
    reader.seek(tp, start)
    wanted = decision_id.encode()
    deadline = time.monotonic() + PRODUCE_TIMEOUT_S
    while await reader.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"audit partition {partition} not read to {end} in time")
        batches = await reader.getmany(tp, timeout_ms=500)
        for record in batches.get(tp, ()):
            if dict(record.headers or ()).get(DECISION_ID_HEADER) == wanted:
                return True
            # Records written before the decision_id header existed.
            if wanted in (record.value or b"") and orjson.loads(record.value).get("decision_id") == decision_id:
                return True
    return False


async def _send_audit(partition: int, key: bytes, body: bytes, decision_id: str) -> None:
    md = await _produce(settings.decisions_topic, key, body, partition, [(DECISION_ID_HEADER, decision_id.encode())])
    generation = app.consumer_generation_id
    known = _audit_next.get(partition)
    if known is None or known[0] != generation or known[1] <= md.offset:
        _audit_next[partition] = (generation, md.offset + 1)
    _confirm(decision_id)


# -- the table store's health ---------------------------------------------------------
# A store that fails every read or write (RocksDB's "IO error" once its directory is gone, a full
# or read-only disk) never heals in place: each record would be left uncommitted while the worker
# stays up and ready. After ``store_failure_limit`` failures in a row the worker exits with
# STORE_FAILED_EXIT, so that its supervisor restarts it: the new process opens the store again
# (rebuilding it from the changelog if its files are gone) and reads the uncommitted records again.
STORE_FAILED_EXIT = 75  # EX_TEMPFAIL
_store_streak = store.FailureStreak(settings.store_failure_limit)


class StoreFailed(RuntimeError):
    """The worker's table store could not read or write a patient's state."""


def _read_state(key: bytes) -> bytes | None:
    try:
        value: bytes | None = patient_state.get(key)
    except Exception as exc:
        raise StoreFailed(f"reading a state: {exc}") from exc
    return value


def _store_failed(exc: StoreFailed) -> None:
    if not _store_streak.failed():
        log.error("the table store failed (%d of %d in a row before the worker exits): %s",
                  _store_streak.count, _store_streak.limit, exc)
        return
    readiness.set_ready(False)
    log.critical("the table store failed %d times in a row (last: %s): exiting with code %d so that a restart "
                 "opens the store again (rebuilt from the changelog if its files are gone) and reads the "
                 "uncommitted records again", _store_streak.count, exc, STORE_FAILED_EXIT)
    for handler in logging.getLogger().handlers + log.handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    os._exit(STORE_FAILED_EXIT)  # nothing past the failed records is committed: a crash loses nothing


def _write_state(key: bytes, value: bytes, partition: int) -> Any:
    """Set the patient's state; return the delivery of its changelog record (a future)."""
    try:
        patient_state.data[key] = value
    except Exception as exc:
        raise StoreFailed(f"writing a state: {exc}") from exc
    _store_streak.ok()
    metrics.STATE_BYTES.observe(len(value))
    return patient_state.send_changelog(partition, key, value)


async def _durable(delivery: Any) -> None:
    await asyncio.wait_for(asyncio.shield(delivery), PRODUCE_TIMEOUT_S)


# -- records ---------------------------------------------------------------------------
def _kind(message: Any, headers: dict[str, bytes]) -> str:
    declared = headers.get(env.KIND)
    if declared is not None:
        kind = declared.decode(errors="replace")
        if kind not in KINDS:
            raise Poison("unknown-kind", kind[:40])
        return kind
    if message.topic not in (settings.events_topic, settings.status_topic):
        raise Poison("unknown-kind", f"topic {message.topic}")
    return env.kind_of(headers, message.topic, settings.status_topic).value


def _parse(key: bytes | None, value: bytes | None, kind: str) -> dict[str, Any]:
    try:
        record = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise Poison("malformed", f"not JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise Poison("malformed", "not a JSON object")
    if kind == env.Kind.status.value:
        patient = record.get("patient_id")
    else:
        try:
            record["event_id"], record["institution"]["id"], record["occurred_at"]  # noqa: B018
            patient = record["patient"]["id"]
            dec.event_epoch_s(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise Poison("malformed", f"missing or invalid {exc}") from None
    if not isinstance(patient, str) or not key or key != patient.encode():
        raise Poison("wrong-key", "the Kafka key is not the record's patient id")
    return record


def _decision(event: dict[str, Any], outcome: dict[str, Any], replayed: bool, engine_s: float,
              revision: str | None) -> dict[str, Any]:
    return audit_record(event, outcome["decision_id"], outcome["alerts"], replayed, round(engine_s * 1000, 3),
                        datetime.now(timezone.utc).isoformat(), WORKER_ID,
                        request_id=logs.request_id.get(),  # the HTTP request's X-Request-ID (None without)
                        unchecked_lines=outcome["unchecked_lines"], rulebase_revision=revision,
                        shadow_alerts=outcome.get("shadow_alerts"))


async def _on_event(message: Any, key: bytes, event: dict[str, Any], headers: dict[str, bytes]) -> Completion:
    t0 = time.perf_counter()
    at = sent_at(headers)
    if at is not None:
        metrics.QUEUE_SECONDS.observe(max(0.0, time.time() - at))
    partition = message.partition
    confirmed = _confirmed_for(partition)
    marker = [message.offset, await _audit_offset(partition)]
    served = rulebase.current  # no await from here to the decision: one decision, one revision
    prior = _read_state(key)  # a store failure is not the event's fault: never a dead letter
    try:
        new_bytes, outcome = dec.handle_event(served.engine, prior, event,
                                              pending=marker, confirmed=confirmed, providers=providers.providers)
    except Exception as exc:
        raise Poison("engine-error", type(exc).__name__) from exc
    engine_s = time.perf_counter() - t0
    decision_id = outcome["decision_id"]
    if log.isEnabledFor(logging.DEBUG):  # one line per decision; no patient id (the request id joins it up)
        rules = "".join(f" {a['rule_id']}" for a in outcome["alerts"])
        log.debug("decision %s scene %s: %d alert(s)%s%s in %.2f ms", decision_id, event["scene"],
                  len(outcome["alerts"]), rules, " (replayed)" if outcome["replayed"] else "", engine_s * 1000)
    metrics.record_decision(event["scene"], outcome["alerts"], engine_s, outcome["replayed"],
                            outcome["shadow_alerts"])
    if not outcome["replayed"]:
        assert new_bytes is not None
        state_written = _write_state(key, new_bytes, partition)  # the one changelog write
        decision = _decision(event, outcome, False, engine_s, served.revision)
        body = orjson.dumps(decision)
        # The reply at once: the decision id is deterministic and, should this worker die
        # before the records below are acknowledged, the event is read and decided again.
        # Shadow alerts are for the audit record only: never in the reply to the HIS.
        reply = env.decision_reply(orjson.dumps({**decision, "shadow_alerts": []}) if decision["shadow_alerts"] else body)
        issued: asyncio.Task[None] | None = None
        if outcome["alerts"]:
            # The alert index (feedback ownership) acknowledged before the HIS can see, and answer, an
            # alert — in a task of its own, so the agent goes on with the next record meanwhile instead
            # of waiting one broker round trip per alerting event (the state is already written).
            issued = asyncio.get_running_loop().create_task(_issue_then_reply(decision, event, headers, reply))
        else:
            await _reply(headers, reply)

        written: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        _audit_in_flight[decision_id] = written

        async def complete() -> None:
            ok = False
            try:
                if issued is not None:
                    await issued  # an alert index record not acknowledged: not finished, read again
                await _durable(state_written)  # the state (with its marker) before the audit record
                await _send_audit(partition, key, body, decision_id)
                ok = True
            finally:
                written.set_result(ok)
                if _audit_in_flight.get(decision_id) is written:
                    del _audit_in_flight[decision_id]
        return complete()
    pending = outcome["pending"]
    in_flight = _audit_in_flight.get(decision_id)
    if pending is not None and in_flight is not None and await asyncio.wait_for(asyncio.shield(in_flight), PRODUCE_TIMEOUT_S * 3):
        # Read again (a seek back over an unfinished offset) while this process is still writing its
        # audit record: not lost, do not write it twice.
        metrics.AUDIT_RECOVERED.labels("found").inc()
    elif pending is not None and not confirmed(decision_id, pending):
        # The state records this event but its audit record may be missing (a crash between
        # the state write and the audit acknowledgement): look, and re-send it if absent.
        original = orjson.dumps(_decision(event, outcome, False, 0.0, served.revision))
        if await _audit_has(partition, pending[1], decision_id):
            metrics.AUDIT_RECOVERED.labels("found").inc()
            _confirm(decision_id)
        else:
            await _send_audit(partition, key, original, decision_id)
            metrics.AUDIT_RECOVERED.labels("resent").inc()
            log.warning("re-sent the audit record of %s (lost in a crash)", decision_id)
    decision = _decision(event, outcome, True, engine_s, None)  # a replay: decided earlier, by its revision
    if outcome["alerts"]:
        await issue_alerts(decision, event)  # idempotent: repairs an index record lost with a crash
    await _reply(headers, env.decision_reply(orjson.dumps(decision)))
    return None


async def _issue_then_reply(decision: dict[str, Any], event: dict[str, Any], headers: dict[str, bytes],
                            reply: bytes) -> None:
    await issue_alerts(decision, event)
    await _reply(headers, reply)


async def _on_history(message: Any, key: bytes, event: dict[str, Any]) -> Completion:
    prior = _read_state(key)
    try:
        new_bytes, outcome = dec.handle_event(rulebase.current.engine, prior, event, evaluate=False)
    except Exception as exc:
        raise Poison("engine-error", type(exc).__name__) from exc
    metrics.HISTORY.labels("replayed" if outcome["replayed"] else "applied").inc()
    if new_bytes is None:
        return None
    return _durable(_write_state(key, new_bytes, message.partition))


async def _on_status(message: Any, key: bytes, status: dict[str, Any]) -> Completion:
    served = rulebase.current
    stored = _read_state(key)
    try:
        prior = state_codec.loads(stored)
        # 事后: a death, suspension or uninsured period recorded after claims were made — findings on
        # those claims, from the state before the status is folded in (after it, they would look known).
        findings = served.engine.retrospective(prior, status)
        state = served.engine.apply_status(prior, status)
    except Exception as exc:
        raise Poison("engine-error", type(exc).__name__) from exc
    if findings:
        # Written (acknowledged) before the state: a crash in between finds the death unknown again
        # and re-sends them, with the same decision ids (at least once).
        decided_at = datetime.now(timezone.utc).isoformat()
        for finding in findings:
            record = retrospective_record(status["patient_id"], finding, status["effective_from"], decided_at,
                                          WORKER_ID, served.revision, status["status"])
            await _send_audit(message.partition, key, orjson.dumps(record), record["decision_id"])
        metrics.RETROSPECTIVE.inc(len(findings))
    metrics.STATUS_UPDATES.inc()
    return _durable(_write_state(key, state_codec.dumps(state), message.partition))


# Issued alerts, keyed by decision id: feedback is checked against them (services/stream/alert_index.py).
issue_alerts = alert_index.install(app, settings, lambda headers, body: _reply(headers, body),
                                   lambda message: env.header_map(message.headers), RAW)


# Last offset processed per (topic, partition); the lag gauge is refreshed on a
# timer rather than per message, to keep the hot path short.
_positions: dict[tuple[str, int], int] = {}


@app.timer(interval=2.0)
async def refresh_lag() -> None:
    for part, used in store.rocksdb_usage().items():
        metrics.ROCKSDB_MEMORY.labels(part).set(used)
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


@app.timer(interval=0.5)
async def refresh_readiness() -> None:
    """Ready: partitions assigned, table recovery done, no rebalance under way."""
    try:
        assigned = any(tp.topic == settings.events_topic for tp in app.consumer.assignment())
    except Exception:
        assigned = False
    readiness.set_ready(assigned and not app.rebalancing and app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]  # faust.tables.Manager
                        and rulebase.ready.is_set() and providers.ready.is_set())


async def _process(message: Any, key: bytes | None, value: bytes | None, headers: dict[str, bytes]) -> Completion:
    """Handle one record in order; return what must still complete before it is finished."""
    kind = _kind(message, headers)
    if kind == env.Kind.probe.value:
        await _reply(headers, orjson.dumps(env.probe_reply(message.partition, WORKER_ID, providers.position)))
        return None
    record = _parse(key, value, kind)
    assert key is not None
    if kind == env.Kind.history.value:
        return await _on_history(message, key, record)
    if kind == env.Kind.status.value:
        completion = await _on_status(message, key, record)
        await _reply(headers, orjson.dumps(env.status_reply(WORKER_ID)))
        return completion
    return await _on_event(message, key, record, headers)


# Records whose effects are still being acknowledged (their completion runs in the background,
# so the agent goes on with the next record meanwhile); bounded.
MAX_IN_FLIGHT = 1000
_in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
_tasks: set[asyncio.Task[None]] = set()


async def _finish(ev: Any, completion: Completion) -> None:
    """Wait for a record's effects; then (only then) ack it so its offset can be committed."""
    message = ev.message
    try:
        if completion is not None:
            await completion
        mark_finished(message)
    except Exception as exc:  # a produce failed or timed out: not finished, read again (transport.py)
        metrics.FAILURES.labels(type(exc).__name__).inc()
        who = pseudonym(ev.key.decode(errors="replace")) if ev.key else "-"
        log.error("could not finish the message for %s at %s[%s]@%s (%r): left uncommitted, read again",
                  who, message.topic, message.partition, message.offset, exc)
    finally:
        mark_done(message)
        _in_flight.release()
        ev.ack()


@app.agent(inputs)
async def process(stream: Any) -> None:
    # noack: a record is acked by _finish once its effects are acknowledged by the broker.
    await rulebase.ready.wait()  # the active published revision, not the packaged one, decides the first event
    await providers.ready.wait()  # every provider status recorded so far, before the first event
    async for ev in stream.noack().events():
        message = ev.message
        headers = env.header_map(message.headers)
        _positions[(message.topic, message.partition)] = message.offset
        # The request id for log lines and the audit record (the completion task copies it).
        token = logs.request_id.set(logs.valid_request_id(headers.get(env.REQUEST_ID)))
        await _in_flight.acquire()
        mark_started(message)
        completion: Completion = None
        try:
            completion = await _process(message, ev.key, ev.value, headers)
        except Poison as exc:
            who = pseudonym(ev.key.decode(errors="replace")) if ev.key else "-"
            log.warning("dead letter (%s) for %s at %s[%s]@%s", exc, who, message.topic, message.partition,
                        message.offset)
            completion = deadletter.send(app.producer, settings, message, exc.reason, str(exc), PRODUCE_TIMEOUT_S)
            await _reply(headers, orjson.dumps(env.error_reply(f"{exc.reason}: the engine could not evaluate this record")))
        except StoreFailed as exc:  # not finished (read again after a restart); exits once it persists
            completion = _failed(exc)
            _store_failed(exc)
        except Exception as exc:  # e.g. the audit offset could not be read: not finished
            completion = _failed(exc)
        task = asyncio.get_running_loop().create_task(_finish(ev, completion))
        _tasks.add(task)
        task.add_done_callback(_tasks.discard)
        logs.request_id.reset(token)


async def _failed(exc: Exception) -> None:
    raise exc


def bookkeeping_sizes() -> dict[str, Any]:
    """Sizes of the worker's own in-memory bookkeeping (memtrace reports them)."""
    from services.stream import transport

    consumer: Any = app.consumer
    by_topic: collections.Counter[str] = collections.Counter()
    for (topic, _), offsets in list(transport._finished.items()):
        by_topic[topic] += len(offsets)
    return {"rocksdb": store.rocksdb_usage(), "confirmed": len(_confirmed), "audit_next": len(_audit_next),
            "audit_in_flight": len(_audit_in_flight), "tasks": len(_tasks), "reply_lookups": len(_reply_lookups),
            "missing_topics": len(_missing_topics), "positions": len(_positions),
            "finished": transport.finished_count(), "finished_by_topic": dict(by_topic),
            "started": len(transport._started), "acked": sum(len(v) for v in consumer._acked.values()),
            "unacked_messages": len(consumer._unacked_messages),
            "gaps": sum(len(v) for v in getattr(consumer, "_gap", {}).values())}

"""Request/reply to the stream worker over Kafka, owned by the ingress.

One aiokafka producer (linger 0) sends each event keyed by patient id with
``correlation_id``, ``reply_to`` and ``reply_partition`` headers. One consumer
*without a group* is assigned every partition of this instance's reply topic
(created at start with as many partitions as the events topic, named after
``PRESETTLE_INSTANCE_ID`` so a restart reuses it). Replies are spread over its
partitions round-robin: a broker whose append cost grows with partition length
(the embedded Tansu) then degrades as slowly as it does for the events topic. A dict maps
correlation ids to futures; each request waits up to its budget.

**Reply topic rotation (embedded broker only).** The embedded broker's fetch cost grows with
partition length and it never trims, so when the embedded-broker watch finds a reply-topic
partition past ``PRESETTLE_EMBEDDED_PARTITION_LIMIT`` records it calls
:meth:`EngineClient.rotate_reply_topic`: a new, empty reply topic (``<reply topic>-r<n>``) is
created and new requests name it; the consumer keeps reading the old one (at its position)
until no request sent with it is still waiting, then stops reading it, and deletes it
``PRESETTLE_REPLY_TOPIC_DELETE_AFTER_S`` later — no in-flight reply is lost. (Not at once: a
worker's producer asks for the metadata of every topic it replied to, and the embedded broker
creates a topic named in a metadata request; workers stop tracking a reply topic after half that
time without a reply.) Topics left by a process that died mid-rotation are deleted at start.

Broker loss is detected two ways: a produce that does not complete within the
budget, and a watcher that checks the bootstrap servers every 0.25 s (a refused
connection: down at once; slow probes: down after four in a row, see
broker_watch.py). While the broker is known to be down, requests answer
``unavailable`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from services.common import logs
from services.common.aio import cancel_and_wait, quietly
from services.common.broker import ensure_topics
from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import Settings
from services.contracts import envelope as env
from services.contracts.gateway import Outcome
from services.contracts.topics import REPLY_TOPIC_CONFIG, service_topics, topic_configs
from services.ingress import metrics
from services.ingress.broker_watch import BrokerWatch, probe

log = logging.getLogger("presettle.ingress")


__all__ = ["EngineClient", "Outcome"]


def _bootstrap_hosts(bootstrap: str) -> list[tuple[str, int]]:
    """``"a:9092,[::1]:9093,b"`` → ``[("a", 9092), ("::1", 9093), ("b", 9092)]``."""
    hosts = []
    for part in bootstrap.split(","):
        part = part.strip()
        host, sep, port = part.rpartition(":")
        if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
            host, port = part, "9092"  # no port given (a bare IPv6 address has colons too)
        hosts.append((host.strip("[]") or "127.0.0.1", int(port)))
    return hosts


def _with_request_id(headers: list[tuple[str, bytes]] | None) -> list[tuple[str, bytes]] | None:
    """The HTTP request's id travels with the record (header ``envelope.REQUEST_ID``)."""
    rid = logs.request_id.get()
    if rid is None:
        return headers
    return [*(headers or ()), (env.REQUEST_ID, rid.encode())]


class EngineClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reply_topic = settings.reply_topic(settings.instance_id)
        self._pending: dict[bytes, asyncio.Future[dict[str, Any]]] = {}
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._base_reply_topic = self.reply_topic
        self._reply_partitions: list[int] = [0]
        # Reply topics replaced by a newer one, read until no request sent with them waits:
        # (topic, its partitions, the correlation-id prefix its requests used).
        self._retiring: list[tuple[str, list[int], bytes]] = []
        self._to_delete: dict[str, float] = {}  # retired topic -> when to delete it (loop time)
        self._rotating = False
        self._generation = 0
        self._assigning = asyncio.Lock()  # one reassignment of the reply consumer at a time
        # Per partition, the reply headers every request carries (encoded once).
        self._reply_routes: list[tuple[tuple[str, bytes], ...]] = []
        self._next_reply = 0
        # Correlation ids: unique per process start, cheap per request.
        self._corr_prefix = uuid.uuid4().hex[:12].encode()
        self._corr_seq = 0
        self.available = False

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        topics = service_topics(s) | {self.reply_topic: s.partitions}
        configs = topic_configs(s) | {self.reply_topic: REPLY_TOPIC_CONFIG}
        security = aiokafka_kwargs(s)  # TLS / SASL from the settings
        await ensure_topics(s.bootstrap, topics, s.replication_factor, configs=configs, security=security)
        if s.embedded_broker:
            await self._delete_stale_reply_topics()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.bootstrap, linger_ms=0, acks=1, request_timeout_ms=10_000, **security,
            client_id=f"presettle-ingress-{s.instance_id}",
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap, group_id=None, enable_auto_commit=False, **security,
            fetch_max_wait_ms=s.fetch_max_wait_ms, auto_offset_reset="latest",
            client_id=f"presettle-ingress-{s.instance_id}",
        )
        await self._consumer.start()
        # The topic may predate this process with another partition count: use what it has.
        self._reply_partitions = sorted(await self._producer.partitions_for(self.reply_topic))
        self._reply_routes = self._routes(self.reply_topic, self._reply_partitions)
        tps = [TopicPartition(self.reply_topic, p) for p in self._reply_partitions]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        self.available = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._drain()), loop.create_task(self._watch()),
                       loop.create_task(self._gauge_backlog()), loop.create_task(self._retire())]

    @staticmethod
    def _routes(topic: str, partitions: list[int]) -> list[tuple[tuple[str, bytes], ...]]:
        return [((env.REPLY_TO, topic.encode()), (env.REPLY_PARTITION, str(p).encode())) for p in partitions]

    # -- reply topic rotation (embedded broker) ------------------------------
    def _rotated_name(self, generation: int) -> str:
        return f"{self._base_reply_topic}-r{generation}"

    async def _delete_topics(self, names: list[str]) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap, **aiokafka_kwargs(self.settings))
        await admin.start()
        try:
            await admin.delete_topics(names)
        finally:
            await quietly(admin.close())

    async def _delete_stale_reply_topics(self) -> None:
        """Rotated reply topics of this instance left by an earlier process: nobody reads them."""
        from aiokafka.admin import AIOKafkaAdminClient

        pattern = re.compile(re.escape(self._base_reply_topic) + r"-r\d+")
        try:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap, **aiokafka_kwargs(self.settings))
            await admin.start()
            try:
                stale = [t for t in await admin.list_topics() if pattern.fullmatch(t)]
            finally:
                await quietly(admin.close())
            if stale:
                await self._delete_topics(stale)
                log.warning("deleted %d reply topic(s) left by an earlier process of this instance", len(stale))
        except Exception as exc:  # noqa: BLE001 - housekeeping: never stops the start
            log.warning("could not look for stale reply topics: %r", exc)

    async def rotate_reply_topic(self) -> str | None:
        """Send new requests' replies to a new, empty reply topic; retire the old one once drained.

        Returns the new topic (None when a rotation is already under way)."""
        if self._rotating or self._producer is None or self._consumer is None:
            return None
        self._rotating = True
        try:
            s = self.settings
            self._generation += 1
            new = self._rotated_name(self._generation)
            await ensure_topics(s.bootstrap, {new: s.partitions}, s.replication_factor,
                                configs={new: REPLY_TOPIC_CONFIG}, security=aiokafka_kwargs(s))
            partitions = sorted(await self._producer.partitions_for(new))
            await self._reassign({new: partitions})
            old, old_partitions, old_prefix = self.reply_topic, self._reply_partitions, self._corr_prefix
            # From here on new requests name the new topic (and a new correlation prefix, so the
            # requests still waiting on the old topic can be told apart).
            self._corr_prefix = uuid.uuid4().hex[:12].encode()
            self.reply_topic, self._reply_partitions = new, partitions
            self._reply_routes = self._routes(new, partitions)
            self._retiring.append((old, old_partitions, old_prefix))
            metrics.REPLY_TOPIC_ROTATIONS.inc()
            log.warning("reply topic %s rotated to %s (the embedded broker slows down as partitions grow); "
                        "the old one is read until its last waiting request is answered, then deleted", old, new)
            return new
        finally:
            self._rotating = False

    async def _reassign(self, add: dict[str, list[int]], drop: str | None = None) -> None:
        """Assign the reply consumer to its current partitions plus ``add`` minus ``drop``, keeping positions."""
        assert self._consumer is not None
        consumer = self._consumer
        async with self._assigning:  # a rotation and a retirement must not undo each other's assignment
            current = [tp for tp in consumer.assignment() if tp.topic != drop]
            positions = {tp: await consumer.position(tp) for tp in current}
            added = [TopicPartition(topic, p) for topic, parts in add.items() for p in parts]
            # No await from here: the drain task cannot read between the assignment and the seeks.
            consumer.assign([*positions, *added])
            for tp, offset in positions.items():
                consumer.seek(tp, offset)
            for tp in added:
                consumer.seek(tp, 0)  # a new topic: from its start

    async def _retire(self) -> None:
        """Once a second: stop reading replaced reply topics nobody waits on any more; delete them later."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            for entry in list(self._retiring):
                topic, _, prefix = entry
                if any(corr.startswith(prefix) for corr in self._pending):
                    continue
                try:
                    await self._reassign({}, drop=topic)
                    self._retiring.remove(entry)
                    self._to_delete[topic] = loop.time() + self.settings.reply_topic_delete_after_s
                    log.info("reply topic %s retired: no longer read, deleted in %.0f s", topic,
                             self.settings.reply_topic_delete_after_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - tried again next round
                    log.warning("could not retire reply topic %s: %r", topic, exc)
            due = [topic for topic, at in self._to_delete.items() if at <= loop.time()]
            if due:
                try:
                    await self._delete_topics(due)
                    log.info("deleted replaced reply topic(s) %s", ", ".join(due))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the next start deletes what is left
                    log.warning("could not delete reply topic(s) %s: %r", due, exc)
                for topic in due:
                    del self._to_delete[topic]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()
        # The producer first: events answered 'timeout' may still sit in its buffer.
        if self._producer:
            await quietly(self._producer.stop(), 10)
        if self._consumer:
            await quietly(self._consumer.stop())

    # -- background --------------------------------------------------------
    def _new_correlation(self) -> bytes:
        self._corr_seq += 1
        return b"%s-%d" % (self._corr_prefix, self._corr_seq)

    def _reply_headers(self, corr: bytes) -> list[tuple[str, bytes]]:
        self._next_reply = (self._next_reply + 1) % len(self._reply_routes)
        return [(env.CORRELATION_ID, corr), *self._reply_routes[self._next_reply]]

    async def _gauge_backlog(self) -> None:
        """Reply-topic backlog and pending requests, once a second (off the hot path)."""
        assert self._consumer is not None
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                backlog = 0
                for tp in self._consumer.assignment():
                    highwater = self._consumer.highwater(tp)
                    if highwater is not None:
                        backlog += max(0, highwater - await self._consumer.position(tp))
                metrics.REPLY_BACKLOG.set(backlog)
            metrics.PENDING.set(len(self._pending))

    async def _drain(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker gone: aiokafka reconnects by itself
                log.warning("reply consumer: %s", exc)
                await asyncio.sleep(0.2)
                continue
            for records in batches.values():
                for record in records:
                    try:
                        corr = dict(record.headers or ()).get(env.CORRELATION_ID)
                        fut = self._pending.get(corr) if corr else None
                        if fut is not None and not fut.done():
                            fut.set_result(orjson.loads(record.value))
                    except Exception as exc:  # one malformed reply must not stop the others
                        log.warning("unreadable reply at %s[%s]@%s: %s", record.topic, record.partition,
                                    record.offset, type(exc).__name__)

    async def _watch(self) -> None:
        """Probe the bootstrap servers every 0.25 s (services/ingress/broker_watch.py)."""
        hosts = _bootstrap_hosts(self.settings.bootstrap)
        watch = BrokerWatch()
        while True:
            await asyncio.sleep(0.25)
            result = await probe(hosts)
            if result == "slow":
                metrics.BROKER_SLOW_PROBES.inc()
            up = watch.observe(result)
            if up != self.available:
                if up:
                    log.warning("broker reachable again")
                else:
                    log.warning("broker unavailable (%s): answering 'unavailable'", watch.reason())
            self.available = up
            metrics.BROKER_UP.set(1 if up else 0)

    # -- requests ----------------------------------------------------------
    async def submit(self, key: bytes, event: dict[str, Any], budget_s: float, topic: str | None = None) -> Outcome:
        """Send one record (an event by default) and wait up to ``budget_s`` for the worker's answer."""
        if not self.available or self._producer is None:
            return Outcome("unavailable", error="broker unreachable")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_s
        corr = self._new_correlation()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[corr] = fut
        headers = _with_request_id([*self._reply_headers(corr), (env.SENT_AT, repr(time.time()).encode())])
        # The waits below use timeout contexts, not asyncio.wait_for (a task and a waiter per call).
        try:
            try:
                # send() only enqueues, but may wait for metadata or buffer space.
                async with asyncio.timeout_at(deadline):
                    delivery = await self._producer.send(topic or self.settings.events_topic, orjson.dumps(event),
                                                         key=key, headers=headers)
            except (TimeoutError, KafkaError) as exc:
                return self._produce_failed(exc)
            # Wait for the broker's ack within the budget. If the budget runs out
            # first while the broker is reachable, the event stays in flight and
            # the answer is 'timeout' (the decision completes and is recorded);
            # a later delivery failure is counted, never silent. (Not awaited in a
            # timeout context: a timeout would cancel the delivery itself.)
            if not delivery.done():
                await asyncio.wait({delivery}, timeout=max(0.0, deadline - loop.time()))
            if not delivery.done():
                value = orjson.dumps(event)
                delivery.add_done_callback(
                    lambda d: self._late_delivery(d, topic or self.settings.events_topic, key, value))
                if not self.available:
                    return Outcome("unavailable", error="the broker did not acknowledge the event")
                return Outcome("timeout")
            if delivery.exception() is not None:
                return self._produce_failed(delivery.exception())
            try:
                async with asyncio.timeout_at(deadline):
                    body = await fut
            except TimeoutError:
                return Outcome("timeout")
        finally:
            self._pending.pop(corr, None)
        if env.REPLY_ERROR in body:
            return Outcome("unavailable", error=body[env.REPLY_ERROR])
        return Outcome("evaluated", body.get(env.REPLY_DECISION, body))

    def _produce_failed(self, exc: BaseException) -> Outcome:
        self.available = False  # the watcher turns it back on
        metrics.PRODUCE_FAILURES.inc()
        log.warning("produce failed: %s", type(exc).__name__)
        return Outcome("unavailable", error="the broker did not accept the event")

    # An event answered 'timeout' must still be decided: a delivery that fails later is sent
    # again (the worker's idempotency record makes a duplicate harmless), a few times.
    LATE_RESENDS = 5

    def _late_delivery(self, delivery: asyncio.Future[Any], topic: str, key: bytes, value: bytes,
                       attempt: int = 0) -> None:
        if not (delivery.cancelled() or delivery.exception() is not None):
            return
        why = "cancelled" if delivery.cancelled() else type(delivery.exception()).__name__
        if attempt >= self.LATE_RESENDS or self._producer is None:
            metrics.PRODUCE_FAILURES.inc()
            log.error("an event answered 'timeout' was not delivered to the broker: %r (after %d resends)",
                      why, attempt)
            return
        log.warning("an event answered 'timeout' was not delivered (%s): sending it again", why)
        task = asyncio.get_running_loop().create_task(self._resend(topic, key, value, attempt + 1))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _resend(self, topic: str, key: bytes, value: bytes, attempt: int) -> None:
        await asyncio.sleep(min(10.0, 0.5 * 2 ** attempt))
        if self._producer is None:
            return
        try:
            delivery = await self._producer.send(topic, value, key=key)
        except Exception:  # noqa: BLE001 - producer closed or buffer full: counted below
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.cancel()
            self._late_delivery(failed, topic, key, value, attempt)
            return
        delivery.add_done_callback(lambda d: self._late_delivery(d, topic, key, value, attempt))

    async def publish(
        self, topic: str, key: bytes | None, value: dict[str, Any], timeout_s: float = 5.0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Write one record and wait for the broker's ack (raises on failure)."""
        if self._producer is None:
            raise RuntimeError("engine client not started")
        await asyncio.wait_for(
            self._producer.send_and_wait(topic, orjson.dumps(value), key=key, headers=_with_request_id(headers)),
            timeout=timeout_s,
        )

    async def publish_many(
        self, topic: str, key: bytes, values: list[dict[str, Any]], timeout_s: float,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Write records in order (one key: one partition) and wait once, up to ``timeout_s``, for all acks."""
        if self._producer is None:
            raise RuntimeError("engine client not started")
        producer = self._producer
        headers = _with_request_id(headers)

        async def send_all() -> None:
            deliveries = [await producer.send(topic, orjson.dumps(v), key=key, headers=headers) for v in values]
            await asyncio.gather(*deliveries)

        await asyncio.wait_for(send_all(), timeout=max(0.0, timeout_s))

    async def providers_applied(self, offset: int, timeout_s: float) -> bool:
        """Whether the worker of every events partition has read the provider-status topic past
        ``offset`` (probes, repeated until ``timeout_s``): an event sent afterwards, to any partition,
        is judged with that record."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            result = await self.probe(max(0.05, deadline - loop.time()))
            reached = result.get("providers_offset")
            if result["ok"] and reached is not None and reached > offset:
                return True
            if loop.time() + 0.02 >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def probe(self, timeout_s: float = 3.0) -> dict[str, Any]:
        """A real round trip through the worker on every partition of the events topic."""
        if self._producer is None or not self.available:
            return {"ok": False, "reason": "broker unreachable"}
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            partitions = sorted(await asyncio.wait_for(
                self._producer.partitions_for(self.settings.events_topic), timeout_s) or ())
        except (asyncio.TimeoutError, KafkaError) as exc:
            return {"ok": False, "reason": f"no metadata for {self.settings.events_topic}: {type(exc).__name__}"}
        if not partitions:
            return {"ok": False, "reason": f"topic {self.settings.events_topic} has no partitions"}
        futures: dict[int, asyncio.Future[dict[str, Any]]] = {}
        try:
            for p in partitions:
                corr = self._new_correlation()
                fut: asyncio.Future[dict[str, Any]] = loop.create_future()
                self._pending[corr] = fut
                futures[p] = fut
                await asyncio.wait_for(
                    self._producer.send(
                        self.settings.events_topic, b"{}", partition=p,
                        headers=[*self._reply_headers(corr), *env.probe_headers()],
                    ),
                    timeout=timeout_s,
                )
            done, _ = await asyncio.wait(list(futures.values()), timeout=max(0.0, timeout_s - (loop.time() - t0)))
        except (asyncio.TimeoutError, KafkaError) as exc:
            return {"ok": False, "reason": f"produce failed: {type(exc).__name__}"}
        finally:
            for corr in [c for c, f in self._pending.items() if f in futures.values()]:
                self._pending.pop(corr, None)
        missing = [p for p, f in futures.items() if f not in done]
        workers = sorted({f.result().get("worker", "?") for f in done})
        positions: list[int | None] = [f.result().get("providers_offset") for f in done]
        result = {
            "ok": not missing,
            "partitions": len(partitions),
            "workers": workers,
            "round_trip_ms": round((loop.time() - t0) * 1000, 1),
            # The lowest provider-status position among the workers that answered (None: one did not say).
            "providers_offset": min(p for p in positions if p is not None)
            if positions and None not in positions else None,
        }
        if missing:
            result["reason"] = f"no worker answered for partitions {missing}"
        return result

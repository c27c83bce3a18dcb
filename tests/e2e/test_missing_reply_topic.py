"""A reply topic that does not exist never slows the worker down (issue 9).

Events whose ``reply_to`` names a reply topic of this deployment that does not exist (an
ingress gone with its topic deleted, or a typo in a batch producer): the worker used to wait for
the topic's metadata on every reply — about one event decided per second. Now it remembers
the missing topic for a while, drops those replies (counted: replies skipped, reason
``missing-topic``) and decides at full speed; every decision still reaches the audit topic.

The embedded broker (Tansu) creates a topic that a producer asks about, so the missing topic here
is one no broker can have: a name of this deployment's reply pattern longer than Kafka's limit
(249 characters). The worker meets it as it meets a deleted reply topic on a Kafka cluster
without auto-creation: no metadata for it, however often it asks. The events raise no alert, so
their replies are sent on the agent's own path (an alerting event replies from a task).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from loadtest.chaos import read_audit
from services.contracts import envelope as env
from services.stack import Stack
from tests.e2e.test_core_path import post
from tests.factories import event, uid

pytestmark = pytest.mark.e2e

EVENTS = 120
# Generous for a loaded machine; before the fix these events needed at least EVENTS seconds.
BOUND_S = 60.0


def skipped_missing(stack: Stack) -> float:
    text = httpx.get(f"http://127.0.0.1:{stack.settings.worker_metrics_port}/metrics", timeout=10).text
    found = re.search(r'^presettle_worker_replies_skipped_total\{reason="missing-topic"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_events_replying_to_a_missing_topic_are_all_decided(stack: Stack, client: httpx.Client) -> None:
    s = stack.settings
    # Matches the reply pattern; too long a name for any Kafka broker to create or know.
    gone = f"{s.topic_prefix}.replies.gone-{uuid.uuid4().hex}" + "x" * 250
    events = [event(patient=uid("GONE-")) for _ in range(EVENTS)]  # no alerts
    wanted = {e["event_id"] for e in events}
    before = skipped_missing(stack)

    async def produce_and_wait() -> set[str]:
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=0)
        await producer.start()
        try:
            for i, e in enumerate(events):
                await producer.send(s.events_topic, orjson.dumps(e), key=e["patient"]["id"].encode(), headers=[
                    (env.REPLY_TO, gone.encode()), (env.CORRELATION_ID, f"gone-{i}".encode()),
                    (env.REPLY_PARTITION, b"0"), (env.SENT_AT, repr(time.time()).encode())])
            await producer.flush()
        finally:
            await producer.stop()
        deadline = time.monotonic() + BOUND_S
        decided: set[str] = set()
        while time.monotonic() < deadline:
            audit = await read_audit(stack.bootstrap, s.decisions_topic, settle_s=1.0, timeout_s=30)
            decided = wanted & {r.get("event_id") for r in audit}
            if decided == wanted:
                assert not [r for r in audit if r.get("event_id") in wanted and r.get("alerts")]
                break
            await asyncio.sleep(1)
        return decided

    decided = asyncio.run(produce_and_wait())
    assert decided == wanted, f"{len(decided)} of {EVENTS} decided within {BOUND_S:.0f} s"
    # Their replies were dropped as going to a missing topic, and counted so (once the first lookup
    # gave up: app.REPLY_LOOKUP_TIMEOUT_S).
    deadline = time.monotonic() + 30
    while skipped_missing(stack) <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert skipped_missing(stack) > before
    # Replies to the real reply topic still arrive.
    assert post(client, event())["engine_status"] == "evaluated"


def test_a_batch_whose_topic_the_producer_stopped_following_is_sent_once_followed_again(stack: Stack) -> None:
    """The stall behind the chaos finding of stop 21, on a real broker: a record batch waiting in the
    producer while its topic is dropped from the producer's metadata has no leader to go to, so
    ``flush()`` — which faust's every commit awaits — waits until the batch expires. The worker's
    timer follows such a topic again (``refollow_stranded``); then the batch goes out."""
    from services.stream.app import refollow_stranded, topics_with_batches

    s = stack.settings
    topic = s.reply_topic(f"strand-{uuid.uuid4().hex[:8]}")

    async def run() -> None:
        # The batch lingers a second, long enough to drop its topic from the metadata first.
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, linger_ms=1000)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"warm-up", partition=0)  # the topic exists, metadata known
            delivery = await producer.send(topic, b"reply", partition=0)
            assert topic in topics_with_batches(producer)
            producer.client.set_topics([s.decisions_topic])  # what forgetting an idle reply topic did
            await producer.client.force_metadata_update()
            assert producer.client.cluster.partitions_for_topic(topic) is None
            with pytest.raises(asyncio.TimeoutError):  # stranded: no leader, however long the linger
                await asyncio.wait_for(asyncio.shield(producer.flush()), 4)
            assert not delivery.done()
            assert refollow_stranded(producer.client, topics_with_batches(producer)) == {topic}
            metadata = await asyncio.wait_for(delivery, 15)
            assert metadata.topic == topic and metadata.partition == 0
            assert topics_with_batches(producer) == set()
            assert refollow_stranded(producer.client, topics_with_batches(producer)) == set()
        finally:
            await producer.stop()

    asyncio.run(run())

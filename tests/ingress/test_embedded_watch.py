"""The embedded broker watch (services/ingress/embedded_watch.py): its reading of partition lengths."""

from __future__ import annotations

import logging

import pytest

from services.common.settings import load_settings
from services.ingress import metrics
from services.ingress.embedded_watch import EmbeddedBrokerWatch, Longest, longest


def watch(**env: str) -> EmbeddedBrokerWatch:
    return EmbeddedBrokerWatch(load_settings({"PRESETTLE_TOPIC_PREFIX": "w", **env}))


def test_longest_partition() -> None:
    assert longest({}) is None
    assert longest({("a", 0): 5, ("b", 3): 9, ("b", 1): 2}) == Longest("b", 3, 9)


def test_only_the_embedded_broker_is_watched() -> None:
    assert not watch().enabled and watch().health() == {}  # Apache Kafka: /healthz unchanged
    assert watch(PRESETTLE_EMBEDDED_BROKER="true").enabled
    assert not watch(PRESETTLE_EMBEDDED_BROKER="true", PRESETTLE_EMBEDDED_PARTITION_LIMIT="0").enabled
    assert watch().limit == 1000  # the documented default


def test_degraded_past_the_limit_logged_once_and_back(caplog: pytest.LogCaptureFixture) -> None:
    w = watch(PRESETTLE_EMBEDDED_BROKER="true", PRESETTLE_EMBEDDED_PARTITION_LIMIT="100")
    assert w.health() == {"broker": "ok"}
    caplog.set_level(logging.WARNING, logger="presettle.ingress")
    w.observe({("w.events", 0): 100, ("w.events", 1): 7})
    assert w.health()["broker"] == "ok" and not caplog.records  # at the limit: not past it
    w.observe({("w.events", 0): 101, ("w.decisions", 2): 150})
    w.observe({("w.events", 0): 120, ("w.decisions", 2): 180})
    health = w.health()
    assert health["broker"] == "degraded"
    assert health["broker_longest_partition"] == {"topic": "w.decisions", "partition": 2, "records": 180,
                                                  "limit": 100}
    assert metrics.EMBEDDED_DEGRADED._value.get() == 1
    assert metrics.EMBEDDED_PARTITION_RECORDS._value.get() == 180
    degraded_lines = [r.getMessage() for r in caplog.records if "degraded" in r.getMessage()]
    assert len(degraded_lines) == 1, degraded_lines  # once, not every reading
    assert "w.decisions[2] holds 150 records" in degraded_lines[0] and "PRESETTLE_KAFKA_BOOTSTRAP" in degraded_lines[0]
    w.observe({("w.events", 0): 3})  # a restarted (empty) broker
    assert w.health()["broker"] == "ok" and metrics.EMBEDDED_DEGRADED._value.get() == 0
    assert "no longer degraded" in caplog.records[-1].getMessage()


def test_a_full_reply_partition_asks_for_a_new_reply_topic() -> None:
    class Replies:
        reply_topic = "w.replies.vm-1-r3"

        async def rotate_reply_topic(self) -> str | None:
            return None

    w = EmbeddedBrokerWatch(load_settings({"PRESETTLE_TOPIC_PREFIX": "w", "PRESETTLE_EMBEDDED_BROKER": "true",
                                           "PRESETTLE_EMBEDDED_PARTITION_LIMIT": "10"}), replies=Replies())
    assert not w.reply_topic_full({("w.replies.vm-1-r3", 0): 10, ("w.events", 0): 500})  # at the limit; others ignored
    assert w.reply_topic_full({("w.replies.vm-1-r3", 1): 11})
    assert not w.reply_topic_full({("w.replies.vm-1-r2", 1): 11})  # an older, retiring one: not ours to rotate
    assert not watch().reply_topic_full({("w.replies.vm-1", 0): 10**6})  # no engine client attached

"""Worker logic without a broker: pending-audit markers, reply topics, sent_at, dead-letter replay plans."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from services.common.settings import load_settings
from services.rules import decision as dec
from services.rules import state as state_codec
from services.rules.engine import Engine
from services.stream import deadletter
from tests.factories import event


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


def markers(blob: bytes | None) -> list:
    return state_codec.loads(blob).get(dec.PENDING_KEY, [])


def test_pending_marker_recorded_and_returned_on_replay(engine: Engine) -> None:
    body = event()
    blob, first = dec.handle_event(engine, None, body, pending=[41, 7])
    assert first["replayed"] is False and first["pending"] == [41, 7]
    assert markers(blob) == [[dec.event_key(body), first["decision_id"], 41, 7]]
    unchanged, again = dec.handle_event(engine, blob, body)
    assert unchanged is None and again["replayed"] is True and again["pending"] == [41, 7]


def test_confirmed_markers_dropped_on_the_next_write(engine: Engine) -> None:
    patient = "P-marker"
    a, b = event(patient=patient), event(patient=patient, occurred_at="2026-03-02T09:00:00+08:00")
    blob, first = dec.handle_event(engine, None, a, pending=[1, 0])
    blob, second = dec.handle_event(engine, blob, b, pending=[2, 1],
                                    confirmed=lambda decision_id, marker: decision_id == first["decision_id"])
    # a's marker dropped (its audit record is confirmed); b's stays until its own is.
    assert markers(blob) == [[dec.event_key(b), second["decision_id"], 2, 1]]
    _, replay = dec.handle_event(engine, blob, a)
    assert replay["replayed"] is True and replay["pending"] is None
    # confirm() on its own: None when nothing changes, the state without the marker otherwise.
    assert dec.confirm(blob, lambda d, m: False) is None
    assert markers(dec.confirm(blob, lambda d, m: True)) == []


def test_reply_topic_pattern_and_sent_at(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.stream import app

    s = app.settings
    assert app.REPLY_TOPIC.fullmatch(s.reply_topic("host-8000"))
    for forged in (s.decisions_topic, s.events_topic, f"{s.topic_prefix}.replies.", "other.replies.x",
                   f"{s.topic_prefix}.replies.a.b", f"x{s.topic_prefix}.replies.a"):
        assert not app.REPLY_TOPIC.fullmatch(forged), forged
    assert app.sent_at({"sent_at": b"1700000000.5"}) == 1700000000.5
    for bad in (b"yesterday", b"nan", b"inf", b"\xff"):
        assert app.sent_at({"sent_at": bad}) is None
    assert app.sent_at({}) is None


def test_records_classified_before_processing() -> None:
    from services.stream import app

    s = app.settings
    msg = SimpleNamespace(topic=s.events_topic, partition=0, offset=1)
    assert app._kind(msg, {}) == "event"
    assert app._kind(msg, {"history": b"1"}) == "history"
    assert app._kind(SimpleNamespace(topic=s.status_topic), {}) == "status"
    with pytest.raises(app.Poison) as unknown:
        app._kind(msg, {"kind": b"evnt"})
    assert unknown.value.reason == "unknown-kind"
    body = event(patient="P1")
    assert app._parse(b"P1", orjson.dumps(body), "event")["event_id"] == body["event_id"]
    for key, value, reason in ((b"P2", orjson.dumps(body), "wrong-key"), (None, orjson.dumps(body), "wrong-key"),
                               (b"P1", b"{oops", "malformed"), (b"P1", b"[]", "malformed"),
                               (b"P1", orjson.dumps({"event_id": "e"}), "malformed"),
                               (b"P1", orjson.dumps({**body, "occurred_at": "soon"}), "malformed")):
        with pytest.raises(app.Poison) as caught:
            app._parse(key, value, "event")
        assert caught.value.reason == reason
    assert app._parse(b"P9", orjson.dumps({"patient_id": "P9"}), "status") == {"patient_id": "P9"}


def test_replay_plan_restores_origin_and_strips_reply_headers() -> None:
    s = load_settings({"PRESETTLE_TOPIC_PREFIX": "t"})
    message = SimpleNamespace(topic=s.events_topic, partition=3, offset=17,
                              headers=[("reply_to", b"t.replies.x"), ("correlation_id", b"c"), ("sent_at", b"1")])
    headers = deadletter.dead_letter_headers(message, "wrong-key", "detail", "worker-0")
    letter = SimpleNamespace(partition=0, offset=5, key=b"k", value=b"v", headers=headers)
    stranger = SimpleNamespace(partition=0, offset=6, key=b"k", value=b"v",
                               headers=[("dlq_origin_topic", s.decisions_topic.encode()), ("dlq_reason", b"x")])
    plan = deadletter.replay_plan([letter, stranger], s)
    assert plan[0]["topic"] == s.events_topic and plan[0]["skip"] is None
    assert plan[0]["origin"] == f"{s.events_topic}[3]@17" and plan[0]["reason"] == "wrong-key"
    names = [k for k, _ in plan[0]["headers"]]
    assert names == ["sent_at", "dlq_replayed_from"]
    assert plan[1]["skip"]  # only input topics are replayed into
    assert deadletter.replay_plan([letter], s, reason="malformed") == []
    future = deadletter._parse_since("2999-01-01T00:00:00Z")
    assert deadletter.replay_plan([letter], s, since=future) == []


def test_cli_parses_replay_options() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    deadletter.add_parser(sub)
    args = parser.parse_args(["deadletter", "replay", "--since", "2026-12-01", "--dry-run"])
    assert args.dry_run is True and args.since == "2026-12-01" and args.func is deadletter.run


def test_idle_reply_topics_are_forgotten_and_nothing_else() -> None:
    from services.stream import app

    quiet = app.REPLY_TOPIC_IDLE_S + 1
    tracked = {app.settings.events_topic, app.settings.decisions_topic,
               app.settings.reply_topic("vm-1"), app.settings.reply_topic("vm-1") + "-r2",
               app.settings.reply_topic("vm-2")}
    used = {app.settings.reply_topic("vm-1") + "-r2": 1000.0, app.settings.reply_topic("vm-1"): 1000.0 - quiet}
    assert app.idle_reply_topics(tracked, used, 1000.0) == {app.settings.reply_topic("vm-1"),
                                                            app.settings.reply_topic("vm-2")}  # never used: idle
    assert app.REPLY_TOPIC_IDLE_S == app.settings.reply_topic_delete_after_s / 2
    # A topic the producer still holds records for is never forgotten, however quiet.
    assert app.idle_reply_topics(tracked, used, 1000.0, {app.settings.reply_topic("vm-2")}) == {
        app.settings.reply_topic("vm-1")}


def test_topics_with_records_but_not_followed_are_stranded() -> None:
    from services.stream import app

    r1, r2 = app.settings.reply_topic("vm-1"), app.settings.reply_topic("vm-2")
    assert app.stranded_topics({app.settings.decisions_topic, r1}, {r1, r2}) == {r2}
    assert app.stranded_topics({r1, r2}, {r1}) == set()


def test_the_worker_freezes_start_up_objects_and_collects_young_objects_less_often() -> None:
    import asyncio
    import gc

    from services.stream import app

    before = gc.get_threshold()
    try:
        asyncio.run(app.tune_gc())
        assert gc.get_threshold() == (app.GC_GEN0_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()

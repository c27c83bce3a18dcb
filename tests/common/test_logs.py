"""The one logging setup: JSON lines off a terminal, text on one, request ids, library loggers held at
WARNING even when something lowers the root logger (faust's spinner does)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.common import logs
from services.common.settings import SettingsError, load_settings
from services.ingress.engine_client import _with_request_id


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    levels = {n: logging.getLogger(n).level for n in ("presettle", *logs.LIBRARY_LOGGERS)}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def test_json_lines_off_a_terminal_with_the_request_id(restore_logging: None) -> None:
    out = io.StringIO()
    assert logs.setup("worker", "auto", "DEBUG", stream=out) == "json"
    token = logs.request_id.set("his-42")
    try:
        logging.getLogger("presettle.worker").debug("decision %s", "d-1")
    finally:
        logs.request_id.reset(token)
    logging.getLogger("presettle.worker").warning("no request")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("presettle.worker").exception("failed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["message"] == "decision d-1" and lines[0]["request_id"] == "his-42"
    assert lines[0]["level"] == "DEBUG" and lines[0]["component"] == "worker" and lines[0]["ts"].endswith("+00:00")
    assert "request_id" not in lines[1]
    assert "ValueError: boom" in lines[2]["exc"]


def test_text_in_a_terminal_and_forced_formats(restore_logging: None) -> None:
    tty = Tty()
    assert logs.setup("stack", "auto", stream=tty) == "text"
    logging.getLogger("presettle.stack").info("ready")
    assert "INFO" in tty.getvalue() and "presettle.stack: ready" in tty.getvalue()
    assert logs.setup("stack", "json", stream=Tty()) == "json"
    assert logs.setup("stack", "text", stream=io.StringIO()) == "text"
    with pytest.raises(ValueError):
        logs.setup("stack", "xml", stream=io.StringIO())


def test_library_loggers_stay_at_warning_when_the_root_is_lowered(restore_logging: None) -> None:
    out = io.StringIO()
    logs.setup("worker", "json", "INFO", stream=out)
    logging.getLogger().setLevel(logging.DEBUG)  # what faust's spinner handler does
    logging.getLogger("aiokafka.conn").debug("noise")
    logging.getLogger("faust.transport").info("noise")
    logging.getLogger("presettle.worker").debug("below our level")
    logging.getLogger("aiokafka").warning("kept")
    messages = [json.loads(line)["message"] for line in out.getvalue().splitlines()]
    assert messages == ["kept"]


@pytest.mark.parametrize("given, valid", [
    ("his-4711", True), ("0f3c2a9e-8b1d-4c3a-9f00-1a2b3c4d5e6f", True), (b"abc.DEF:1/2+3=", True),
    ("", False), ("two words", False), ("x" * 129, False), ("-leading-dash", False), ("a\nb", False), (None, False),
])
def test_request_ids_taken_only_when_plain_tokens(given: str | bytes | None, valid: bool) -> None:
    assert (logs.valid_request_id(given) is not None) is valid


def test_settings_name_bad_log_values() -> None:
    assert load_settings({}).log_format == "auto" and load_settings({}).log_level == "INFO"
    assert load_settings({"PRESETTLE_LOG_FORMAT": "JSON", "PRESETTLE_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    with pytest.raises(SettingsError, match="PRESETTLE_LOG_FORMAT"):
        load_settings({"PRESETTLE_LOG_FORMAT": "xml"})
    with pytest.raises(SettingsError, match="PRESETTLE_LOG_LEVEL"):
        load_settings({"PRESETTLE_LOG_LEVEL": "loud"})


def test_the_ingress_echoes_or_makes_the_request_id_and_puts_it_on_kafka_headers() -> None:
    from services.ingress.app import create_app

    http = TestClient(create_app(load_settings({})))  # no lifespan: no broker
    assert http.get("/healthz-nope", headers={"X-Request-ID": "his-1"}).headers["x-request-id"] == "his-1"
    made = http.get("/v1/rules", headers={"X-Request-ID": "not a token"}).headers["x-request-id"]
    assert len(made) == 32 and made != "not a token"
    assert _with_request_id([("a", b"1")]) == [("a", b"1")]  # outside a request: nothing added
    token = logs.request_id.set("his-2")
    try:
        assert _with_request_id([("a", b"1")]) == [("a", b"1"), ("request_id", b"his-2")]
        assert _with_request_id(None) == [("request_id", b"his-2")]
    finally:
        logs.request_id.reset(token)

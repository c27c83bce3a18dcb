"""One logging setup for the ingress, the worker and the stack, and the request id they share.

* Format: JSON lines when stderr is not a terminal (a log file, a container), plain text in a
  terminal; ``PRESETTLE_LOG_FORMAT=json|text`` forces either. ``PRESETTLE_LOG_LEVEL`` sets
  our loggers' level (``presettle.*``, default INFO; DEBUG logs one line per decision).
* Library loggers (aiokafka, faust, mode, …) stay at WARNING whatever else changes the
  root logger: faust's terminal spinner sets the root to DEBUG, and every aiokafka
  ``log.debug`` then costs the worker ~14 % of its CPU (docs/operations.md).
* The request id: taken from the HTTP request's ``X-Request-ID`` when it is a plain token,
  else generated; echoed in the response, carried to the worker in the Kafka header
  ``request_id`` (``contracts.envelope.REQUEST_ID``), set around the worker's handling of that
  event, written into the audit record, and added to every log line emitted meanwhile.

Patient ids never go into a log line: log ``privacy.pseudonym(patient_id)`` where one is needed.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

HTTP_HEADER = "X-Request-ID"  # the Kafka header is services.contracts.envelope.REQUEST_ID
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")

LIBRARY_LOGGERS = ("aiokafka", "faust", "mode", "kafka", "uvicorn.error", "asyncio")
FORMATS = ("auto", "json", "text")

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("presettle_request_id", default=None)


def valid_request_id(value: str | bytes | None) -> str | None:
    """The id when it is a plain token of at most 128 characters (no spaces, no control bytes)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return value if _VALID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` from the current context (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, component, message, request_id, exc."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "component": self.component,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            line["request_id"] = rid
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s " + component + " %(name)s: %(message)s%(rid)s")

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        record.rid = f" [request_id={rid}]" if rid else ""
        return super().format(record)


def resolve_format(fmt: str, stream: TextIO) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def setup(component: str, fmt: str = "auto", level: str | int = "INFO", stream: TextIO | None = None) -> str:
    """Configure the root logger for one process; return the format chosen ('json' or 'text').

    Replaces the root's handlers with one stream handler (stderr by default) at DEBUG, so a
    library that later lowers the root's level cannot flood it: each logger's own level
    decides. ``presettle`` gets ``level``; the library loggers WARNING.
    """
    stream = stream or sys.stderr
    chosen = resolve_format(fmt, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(component) if chosen == "json" else TextFormatter(component))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("presettle").setLevel(level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own handlers: one format instead
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    logging.captureWarnings(True)
    return chosen

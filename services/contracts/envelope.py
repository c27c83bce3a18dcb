"""The Kafka envelope between the ingress and the worker: header names, message kinds, replies.

Every record on the events topic carries its kind in headers (no header: an event to
evaluate). A record someone waits for carries :data:`CORRELATION_ID`, :data:`REPLY_TO`
and :data:`REPLY_PARTITION`; the worker answers on that topic and partition with a
record whose only header is :data:`CORRELATION_ID` and whose value is one member of the
reply union (:class:`DecisionReply`, :class:`StatusReply`, :class:`ProbeReply`,
:class:`ErrorReply`). Header values are bytes; flags are :data:`FLAG`.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict

from services.contracts.decision import AuditRecord

# -- header names ----------------------------------------------------------------
CORRELATION_ID = "correlation_id"  # the ingress's key for the waiting request (echoed in the reply)
REPLY_TO = "reply_to"  # the reply topic of the ingress instance that waits
REPLY_PARTITION = "reply_partition"  # the partition of REPLY_TO to answer on (decimal)
SENT_AT = "sent_at"  # epoch seconds (repr of a float) when the ingress sent it: queue time, stale replies
HISTORY = "history"  # FLAG: an earlier encounter to merge into the patient's history, no rules, no reply
PROBE = "probe"  # FLAG: a health probe; the worker answers ProbeReply without touching state
KIND = "kind"  # optional: the record's Kind spelled out; a value the worker does not know is dead-lettered
REQUEST_ID = "request_id"  # the HTTP request id, carried to the worker's log lines and the audit record

FLAG = b"1"


class Kind(str, Enum):
    """What a record on the worker's input topics asks for."""

    event = "event"  # evaluate the rules, reply, write the audit record
    history = "history"  # merge into the history without evaluating (HISTORY header)
    probe = "probe"  # answer a health probe (PROBE header)
    status = "status"  # fold an insured-status update (the status topic)


def kind_of(headers: Mapping[str, bytes], topic: str, status_topic: str) -> Kind:
    """The kind of one input record from its headers and topic (the worker's dispatch)."""
    if headers.get(PROBE):
        return Kind.probe
    if headers.get(HISTORY):
        return Kind.history
    if topic == status_topic:
        return Kind.status
    return Kind.event


def history_headers() -> list[tuple[str, bytes]]:
    return [(HISTORY, FLAG)]


def probe_headers() -> list[tuple[str, bytes]]:
    return [(PROBE, FLAG)]


def header_map(headers: Any) -> dict[str, bytes]:
    """Headers as a dict, from aiokafka's list of pairs or faust's dict (None: empty)."""
    if not headers:
        return {}
    if isinstance(headers, dict):
        return dict(headers)
    return {k: v for k, v in headers}


# -- replies (the value of a record on a reply topic) ----------------------------------
REPLY_DECISION = "decision"
REPLY_ERROR = "error"


class DecisionReply(BaseModel):
    """An event evaluated (or answered from the idempotency record): its audit record."""

    decision: AuditRecord


class StatusReply(BaseModel):
    """An insured-status update folded into the patient state."""

    applied: Literal[True]
    worker: str


class ProbeReply(BaseModel):
    """A health probe answered by the worker owning ``partition``."""

    probe: Literal[True]
    partition: int
    worker: str
    providers_offset: int | None = None  # the worker's position on the provider-status topic (records before it applied)


class ErrorReply(BaseModel):
    """The worker could not process the record (the ingress answers ``unavailable``)."""

    model_config = ConfigDict(extra="ignore")

    error: str


Reply = DecisionReply | StatusReply | ProbeReply | ErrorReply


def decision_reply(audit_json: bytes) -> bytes:
    """A DecisionReply's bytes around an already serialised audit record (no second encode)."""
    return b'{"' + REPLY_DECISION.encode() + b'":' + audit_json + b"}"


def status_reply(worker: str) -> dict[str, Any]:
    return {"applied": True, "worker": worker}


def probe_reply(partition: int, worker: str, providers_offset: int | None = None) -> dict[str, Any]:
    return {"probe": True, "partition": partition, "worker": worker, "providers_offset": providers_offset}


def error_reply(message: str) -> dict[str, Any]:
    return {REPLY_ERROR: message}

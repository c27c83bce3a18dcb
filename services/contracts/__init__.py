"""The wire contracts between PreSettle's processes: one owner for every format that crosses a seam.

Pure: pydantic models, constants and small functions; no I/O, and nothing from
``services.ingress`` or ``services.stream`` (tests/test_architecture.py checks).

* :mod:`.event` — the native :class:`Event` a HIS posts (and the worker reads as ``to_wire()``);
* :mod:`.status` — :class:`PatientStatus`, the bureau's insured-status updates;
* :mod:`.decision` — :class:`Alert`, :class:`Decision` (the public answer), :class:`AuditRecord`;
* :mod:`.feedback` — :class:`FeedbackRecord` on the feedback topic;
* :mod:`.errors` — :class:`ErrorBody`, the native error shape;
* :mod:`.envelope` — Kafka header names, message kinds, the reply union;
* :mod:`.topics` — topic names, partitions, configs and codecs;
* :mod:`.gateway` — the engine gateway protocol and its :class:`Outcome`;
* :mod:`.ids` — deterministic decision and alert ids; :mod:`.common` — ``CST``, the id pattern.
"""

from services.contracts.common import CST, ID_PATTERN, Id
from services.contracts.decision import STATIC_ALERT_KEYS, Alert, AuditRecord, Decision, EngineStatus
from services.contracts.errors import ErrorBody, ErrorDetail
from services.contracts.event import Event
from services.contracts.feedback import FeedbackRecord
from services.contracts.gateway import EngineGateway, Outcome
from services.contracts.status import PatientStatus

__all__ = [
    "CST", "ID_PATTERN", "STATIC_ALERT_KEYS", "Alert", "AuditRecord", "Decision", "EngineGateway", "EngineStatus",
    "ErrorBody", "ErrorDetail", "Event", "FeedbackRecord", "Id", "Outcome", "PatientStatus",
]

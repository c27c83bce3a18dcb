"""The bureau's rule-base admin routes: publish a bundle, list revisions, activate one (issue 12).

``POST /v1/admin/rulebase`` takes a bundle — the ``rules/`` and ``kb/`` of a rule-base
directory — either as a tar archive (``Content-Type: application/gzip`` or
``application/x-tar``; ``presettle rules publish`` sends a tar.gz) or as one JSON object
``{"rules/R01.json": {...}, "kb/drugs.json": {...}, …}`` (``application/json``). It loads
it with the start-up loader and runs every golden case of every rule in it
(services/rules/golden.check_bundle): any failure answers 422 listing the failing rules and
cases, and nothing is written. An accepted bundle is written to the rule-base topic and made
active; every worker and ingress switches to it without restarting
(services/common/rulebase_feed.py). The answer comes once this ingress serves it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common.rulebase_feed import RevisionUnavailable, RulebaseFeed
from services.contracts import rulebase as rb
from services.contracts.errors import error_body
from services.ingress.auth import AdminDep
from services.rules.bundle import BundleFormatError, files_from_json, files_from_tar
from services.rules.golden import BundleRejected, check_bundle

log = logging.getLogger("presettle.ingress")

router = APIRouter(tags=["rule base"])
PUBLISH_PATH = "/v1/admin/rulebase"
_lock = asyncio.Lock()  # one publish or activation at a time per ingress


class ActivateRequest(BaseModel):
    revision: str = Field(min_length=1, max_length=64, description="a revision id from GET /v1/admin/rulebase/revisions")


def _feed(request: Request) -> RulebaseFeed:
    return request.app.state.rulebase


def _bundle_body(raw: bytes, content_type: str) -> dict[str, bytes]:
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BundleFormatError(f"not valid JSON ({exc})") from None
        return files_from_json(doc)
    return files_from_tar(raw)


def _where(failure: dict[str, Any]) -> str:
    if failure.get("rule_id") is None:
        return str(failure.get("file") or "body")
    case = failure.get("case")
    return f"rules/{failure['rule_id']}.json" + (f" cases[{case}]" if case is not None else "")


def rejected_body(exc: BundleRejected) -> dict[str, Any]:
    """The 422 of a rejected bundle: the error body, with each failing rule/case in ``errors`` and ``failures``."""
    errors = [{"field": _where(f), "message": msg, "type": "golden_case" if f.get("case") is not None else "bundle"}
              for f in exc.failures for msg in f.get("errors", [])]
    body = error_body("bundle_rejected", str(exc), field=_where(exc.failures[0]) if exc.failures else "body",
                      errors=errors)
    body["failures"] = exc.failures
    return body


def _unavailable(exc: Exception) -> HTTPException:
    log.error("rule-base topic unavailable: %r", exc)
    return HTTPException(503, error_body("unavailable", f"the rule-base topic could not be written: {exc!r}"[:300]))


@router.post(PUBLISH_PATH, response_model=rb.PublishResult,
             responses={422: {"description": "not a bundle (invalid_request), or it does not load or golden cases "
                                             "fail (bundle_rejected, with failures): nothing changed"},
                        503: {"description": "the broker did not take the bundle: nothing changed"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                 "application/json": {"schema": {"type": "object", "additionalProperties": {}}}}}})
async def publish(request: Request, _: AdminDep,
                  activate: Annotated[bool, Query(description="make it the active revision at once")] = True,
                  note: Annotated[str | None, Query(max_length=500)] = None) -> Any:
    """Validate a rule-base bundle (loader + every golden case), store it and (by default) activate it."""
    raw = await request.body()
    try:
        files = _bundle_body(raw, request.headers.get("content-type", ""))
    except BundleFormatError as exc:
        return JSONResponse(status_code=422, content=error_body("invalid_request", f"body: {exc}", field="body"))
    try:
        engine, cases = await asyncio.to_thread(check_bundle, files)
    except BundleRejected as exc:
        log.warning("rule-base bundle rejected: %s", exc)
        return JSONResponse(status_code=422, content=rejected_body(exc))
    feed = _feed(request)
    async with _lock:
        try:
            revision = await feed.store(files, engine, cases, note)
            if not activate:
                return rb.PublishResult(revision=revision, active=revision == feed.current.revision, cases=cases,
                                        rules=len(engine.rules))
            result = await feed.activate(revision, action="publish")
        except RevisionUnavailable as exc:  # written but not read back intact: say so, nothing activated
            raise HTTPException(503, error_body("unavailable", str(exc))) from None
        except Exception as exc:
            raise _unavailable(exc) from None
    log.warning("rule-base revision %s published (%d rules, %d golden cases)", revision, len(engine.rules), cases)
    return result.model_copy(update={"cases": cases, "rules": len(engine.rules)})


@router.get("/v1/admin/rulebase/revisions", response_model=rb.Revisions)
async def revisions(request: Request, _: AdminDep) -> Any:
    """Every published revision (oldest first), the activations, and the revision this ingress serves."""
    return _feed(request).revisions()


@router.post("/v1/admin/rulebase/activate", response_model=rb.PublishResult,
             responses={404: {"description": "no such stored revision"}})
async def activate(body: ActivateRequest, request: Request, _: AdminDep) -> Any:
    """Make a stored revision (or the packaged one) active again: roll back or forward, no restart."""
    feed = _feed(request)
    async with _lock:
        try:
            return await feed.activate(body.revision)
        except RevisionUnavailable as exc:
            raise HTTPException(404, error_body("not_found", str(exc), field="revision")) from None
        except Exception as exc:
            raise _unavailable(exc) from None

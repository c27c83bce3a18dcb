"""The FastAPI ingress: the composition root of the HTTP side.

Run: ``uvicorn services.ingress.app:app`` (``make run`` does it for you).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common import logs
from services.common.provider_feed import ProviderFeed
from services.common.rulebase_feed import RulebaseFeed, Served
from services.common.settings import Settings, get_settings
from services.contracts.errors import error_body
from services.dialects.common import field_path, first_error, unreadable_body
from services.ingress import (
    cases,
    catalog,
    cds,
    dashboard,
    decisions,
    feedback,
    metrics,
    nhsa,
    openapi,
    reports,
    rulebase,
)
from services.ingress.embedded_watch import EmbeddedBrokerWatch
from services.ingress.engine_client import EngineClient
from services.ingress.limits import BodyLimitMiddleware
from services.ingress.native import router as native_router
from services.ingress.request_id import RequestIdMiddleware

log = logging.getLogger("presettle.ingress")


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    raw = list(exc.errors())
    errors = [
        {"field": "body" if e.get("type") == "json_invalid" else field_path(e.get("loc", ())),
         "message": e.get("msg", ""), "type": e.get("type", "")}
        for e in raw
    ]
    field, message = first_error(raw)
    return JSONResponse(status_code=422, content=error_body("invalid_request", f"{field}: {message}", field, errors))


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    unreadable = unreadable_body(exc)
    if unreadable is not None:  # like any other body that is not JSON: 422 naming the body
        return JSONResponse(status_code=422, content=error_body(
            "invalid_request", f"body: {unreadable}", "body",
            [{"field": "body", "message": unreadable, "type": "json_invalid"}]))
    detail = exc.detail if isinstance(exc.detail, dict) else error_body("http_error", str(exc.detail))
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:  # Starlette's Allow names the first matching route's methods only
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    return JSONResponse(status_code=exc.status_code, content=detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path answers (one path may be served by several routes)."""
    table = getattr(request.app.state, "method_table", None)
    if table is None:
        table = request.app.state.method_table = [
            (r.path_regex, r.methods) for r in _leaf_routes(request.app.routes)
            if getattr(r, "methods", None) and getattr(r, "path_regex", None) is not None]
    path = request.scope.get("path", "")
    return sorted({m for regex, methods in table if regex.match(path) for m in methods})


def _leaf_routes(routes: Any) -> Any:
    """Routes with their included routers expanded (FastAPI keeps an included router as one entry)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        else:
            yield route


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return JSONResponse(status_code=500, content=error_body("internal_error", type(exc).__name__))


class ObserveMiddleware:
    """Request count and latency per route template, method and status (plain ASGI: no extra task per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})["started"] = started
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            labels = (template, scope["method"], str(status))
            metrics.HTTP_REQUESTS.labels(*labels).inc()
            metrics.HTTP_LATENCY.labels(*labels).observe(time.perf_counter() - started)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = EngineClient(settings)
        await client.start()
        app.state.engine_client = client
        # The active published rule-base revision (packaged until one is published), followed live.
        await app.state.rulebase.start()
        await app.state.providers.start()  # provider status: written by the admin routes, read for look-ups
        await dashboard.start(app, settings)  # the live page's audit-topic consumer
        app.state.embedded_watch = EmbeddedBrokerWatch(settings, replies=client)
        app.state.embedded_watch.start()  # the embedded broker only: its partition lengths
        log.warning("PreSettle ingress ready on %s:%s (broker %s, reply topic %s)",
                    settings.http_host, settings.http_port, settings.bootstrap, client.reply_topic)
        try:
            yield
        finally:
            try:
                await app.state.embedded_watch.stop()
                await dashboard.stop(app)
            finally:
                await app.state.rulebase.stop()
                await app.state.providers.stop()
                await client.stop()
                store = getattr(app.state, "store", None)
                if store is not None:
                    store.close()

    app = FastAPI(
        title="PreSettle",
        version="0.1.0",
        description="Real-time pre-settlement alerts for medical-insurance fund supervision "
        "(医保基金事前提醒 / 事中审核). Authenticate with the `X-API-Key` header (Authorize).",
        lifespan=lifespan,
        docs_url=None,  # served by openapi.install from local assets
        redoc_url=None,
    )
    app.state.settings = settings
    feed = RulebaseFeed(settings, f"presettle-ingress-{settings.instance_id}")
    app.state.rulebase = feed
    app.state.providers = ProviderFeed(settings, f"presettle-ingress-{settings.instance_id}")
    app.state.engine = feed.current.engine  # pure: KB and rule lookups for the catalog routes
    app.state.known_rules = frozenset(feed.known_rule_ids)

    def switched(served: Served) -> None:
        app.state.engine = served.engine
        # Feedback may name alerts of any revision this process has known.
        app.state.known_rules = frozenset(feed.known_rule_ids)
    feed.listeners.append(switched)
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected_error)

    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,  # 413 before the body is read
                       overrides={rulebase.PUBLISH_PATH: settings.max_bundle_bytes})
    app.add_middleware(ObserveMiddleware)  # counts the 413s too
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer carries X-Request-ID

    app.include_router(native_router)
    app.include_router(catalog.router)
    app.include_router(catalog.status_router)
    app.include_router(dashboard.router)
    app.include_router(nhsa.router)  # dialects: NHSA 3101–3103, CDS Hooks, feedback
    app.include_router(cds.router)
    app.include_router(feedback.router)
    app.include_router(rulebase.router)
    app.include_router(decisions.router)  # the decision log (事后): look-ups, cases, risk lists, reports
    app.include_router(cases.router)
    app.include_router(reports.router)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> JSONResponse:
        """200 only when a real round trip through a worker succeeds on every partition.

        With the embedded broker it also says ``"broker": "ok"`` or ``"degraded"`` (a partition past
        ``PRESETTLE_EMBEDDED_PARTITION_LIMIT`` records: restart it, or use Apache Kafka); degraded
        alone does not make it 503."""
        result = await request.app.state.engine_client.probe()
        watch = getattr(request.app.state, "embedded_watch", None)
        if watch is not None:
            result.update(watch.health())
        return JSONResponse(status_code=200 if result["ok"] else 503, content=result)

    @app.get("/metrics", tags=["ops"], include_in_schema=True)
    async def prometheus_metrics() -> Response:
        """Prometheus exposition of the ingress metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    openapi.install(app)
    return app


def __getattr__(name: str) -> Any:
    # `uvicorn services.ingress.app:app` builds the app on first access, so
    # importing this module (tests, tools) reads no environment.
    if name == "app":
        settings = get_settings()
        logs.setup("ingress", settings.log_format, settings.log_level)
        return create_app(settings)
    raise AttributeError(name)

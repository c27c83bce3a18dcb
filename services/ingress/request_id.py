"""``X-Request-ID``: taken from the request when it is a plain token, else generated; echoed in the
response and set in ``logs.request_id`` for the request's task (the engine client copies it into the
Kafka headers, the worker into its log lines and the audit record)."""

from __future__ import annotations

from typing import Any

from services.common import logs

_HEADER = logs.HTTP_HEADER.lower().encode()


class RequestIdMiddleware:
    """Plain ASGI: no extra task per request, so the context variable reaches the route."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == _HEADER), None)
        rid = logs.valid_request_id(given) or logs.new_request_id()
        encoded = rid.encode()

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (_HEADER, encoded)]
            await send(message)

        token = logs.request_id.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)

"""The request body limit: ``PRESETTLE_MAX_BODY_BYTES`` (default 1 MiB), answered 413.

A plain ASGI middleware in front of every route. A ``Content-Length`` above the
limit is refused before a byte of the body is read; a body without one (chunked
transfer encoding) is read only until it passes the limit. A body within the
limit is buffered (the JSON routes read it whole anyway) and replayed to the
application, so routes see an ordinary request. The 413 is documented on every operation
with a body by services/ingress/openapi.py.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.contracts.errors import error_body

DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def too_large_body(limit: int) -> bytes:
    return orjson.dumps(error_body("payload_too_large", f"body: the request body is larger than {limit} bytes",
                                   field="body"))


class BodyLimitMiddleware:
    """413 with the error body for a request body over ``max_bytes``; never reads past the limit."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}  # path → its own limit (the rule-base upload)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_bytes)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
                break
        if declared is not None and declared > limit:
            await self._refuse(send, limit)
            return
        # Read the body up to the limit (a declared length within it, or a chunked body).
        chunks: list[dict[str, Any]] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                chunks.append(message)
                break
            total += len(message.get("body", b""))
            if total > limit:
                await self._refuse(send, limit)
                return
            chunks.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            if chunks:
                return chunks.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any, limit: int) -> None:
        body = too_large_body(limit)
        # Connection: close — the rest of the body is never read, so the connection cannot be reused.
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

"""Worker readiness for probes: ``GET /ready`` on the worker's metrics port.

The worker (services/stream/app.py) sets the flag from a 0.5 s timer: ready
once it has partitions of the events topic assigned, its table recovery is done
and no rebalance is under way. ``/metrics`` (and ``/``) serve Prometheus as
before; ``/healthz`` answers 200 while the process serves HTTP at all (liveness).
"""

from __future__ import annotations

import threading
from typing import Any
from wsgiref.simple_server import make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

_ready = threading.Event()


def set_ready(value: bool) -> None:
    if value:
        _ready.set()
    else:
        _ready.clear()


def is_ready() -> bool:
    return _ready.is_set()


def wsgi_app() -> Any:
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/ready":
            ok = is_ready()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ready\n" if ok else b"not ready: no partitions assigned or recovery under way\n"]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"alive\n"]
        return list(metrics_app(environ, start_response))
    return app


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Serve /metrics, /ready and /healthz on ``addr:port`` from a daemon thread."""
    httpd = make_server(addr, port, wsgi_app(), ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=httpd.serve_forever, name="worker-http", daemon=True).start()

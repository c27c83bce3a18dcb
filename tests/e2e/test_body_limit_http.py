"""The body limit on a real uvicorn: refused before the body is read, with and without Content-Length."""

from __future__ import annotations

import socket

import orjson
import pytest

from services.stack import Stack

pytestmark = pytest.mark.e2e


def _response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ")[1]), orjson.loads(body[:length])


def test_declared_20_mb_body_is_refused_without_sending_it(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.settings.http_port), timeout=30) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-API-Key: dev-key-h1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n{\"event_id\":")
        status, body = _response(sock)  # answered with only 12 of the 20 MB sent
    assert status == 413 and body["error"] == "payload_too_large" and body["field"] == "body"


def test_chunked_body_is_refused_once_it_passes_the_limit(stack: Stack) -> None:
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", stack.settings.http_port), timeout=30) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-API-Key: dev-key-h1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        sent = 0
        try:
            for _ in range(64):  # up to 4 MiB; the answer comes after ~1 MiB
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: it stopped reading
        status, body = _response(sock)
    assert status == 413 and body["error"] == "payload_too_large"

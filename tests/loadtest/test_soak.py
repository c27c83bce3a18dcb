"""The soak's per-minute line (loadtest/soak.py): what it reports, from given answers."""

from __future__ import annotations

from types import SimpleNamespace

from loadtest.soak import minute_row, pct


def answer(status: str, latency_ms: float) -> SimpleNamespace:
    return SimpleNamespace(status=status, latency_s=latency_ms / 1000)


def test_a_minute_row_carries_answers_latency_memory_and_load() -> None:
    batch = [answer("evaluated", ms) for ms in range(1, 101)] + [answer("timeout", 300.0), answer("unavailable", 1)]
    row = minute_row(3, batch, {"broker": 41.5, "worker-0": 120.0, "ingress": None}, 3.14159)
    assert row["minute"] == 3
    assert row["answers"] == {"evaluated": 100, "timeout": 1, "unavailable": 1}
    # Percentiles of the evaluated answers only: a timeout's 300 ms is no decision latency.
    assert row["p50_ms"] == 51.0 and row["p99_ms"] == 99.0
    assert row["rss_mb"] == {"broker": 41.5, "worker-0": 120.0, "ingress": None}
    assert row["load_1m"] == 3.14


def test_a_minute_without_decisions_has_no_percentiles() -> None:
    row = minute_row(1, [answer("unavailable", 1)], {}, 0.5)
    assert row["p50_ms"] is None and row["p99_ms"] is None
    assert pct([], 50) is None


def test_the_worker_rocksdb_gauge_is_read_from_its_metrics_port() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from loadtest.soak import worker_rocksdb_mb

    body = (b'# TYPE presettle_worker_rocksdb_memory_bytes gauge\n'
            b'presettle_worker_rocksdb_memory_bytes{part="cache"} 3145728.0\n'
            b'presettle_worker_rocksdb_memory_bytes{part="memtables"} 1048576.0\n')

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert worker_rocksdb_mb(server.server_address[1]) == {"cache": 3.0, "memtables": 1.0}
    finally:
        server.shutdown()
    assert worker_rocksdb_mb(1) is None  # nothing listening: no figure, no crash

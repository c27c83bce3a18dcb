"""The ingress's own CPU per request, without a broker: POST /v1/events through the ASGI app in-process.

    python -m loadtest.bench_ingress [--requests 3000] [--alerts 2]

Builds the real FastAPI app (every middleware, auth, validation, the route, the response) with
a stand-in engine gateway that answers at once with a worker-shaped decision carrying
``--alerts`` alerts, and calls the ASGI app directly (no sockets, no HTTP client), so the figure
is the ingress's own work per request: what FastAPI, pydantic and our code cost — not aiokafka,
not uvicorn's HTTP parsing. It reports CPU µs per request (process time, so another process
on a shared machine barely moves it) and the p50 of the per-request wall time. The last line
is one JSON object. A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson

from loadtest.bench_e2e import Traffic


class CannedEngine:
    """EngineClient's ``submit``: the decision a worker would reply, at once."""

    available = True

    def __init__(self, alerts: int) -> None:
        self.alerts = alerts

    async def submit(self, key: bytes, event: dict[str, Any], budget_s: float, topic: str | None = None) -> Any:
        from services.contracts.gateway import Outcome
        from services.contracts.ids import decision_id_for

        did = decision_id_for(event["institution"]["id"], event["event_id"])
        alerts = [{
            "rule_id": f"R{18 + n}", "rule_version": "1.0.0", "gz_code": "GZ10000301001", "name_zh": "超量开药",
            "name_en": "Quantity over the limit", "result_type": "suspicious", "indicator": "warning",
            "severity": "W", "message_zh": "单次开药超过30天用量", "message_en": "More than 30 days supplied",
            "line_ids": ["1"], "amount": 15.0, "policy_basis": "《医疗保障基金使用监督管理条例》第十五条",
            "evidence": [{"kind": "kb", "table": "drugs", "code": event["items"][0]["code"], "max_days": 30}],
            "region": "default", "alert_id": f"{did}.R{18 + n}.1",
        } for n in range(self.alerts)]
        return Outcome("evaluated", {"decision_id": did, "event_id": event["event_id"], "alerts": alerts,
                                     "unchecked_lines": [], "replayed": False, "rulebase_revision": "rb-bench"})


class LoopbackProducer:
    """The aiokafka producer as ``EngineClient`` uses it (``--engine-client``): each send acknowledged at
    once, and the worker's reply — CannedEngine's decision — handed to the client's waiting request on
    the next turn of the loop, as its reply consumer does with a record (services/ingress/engine_client.py)."""

    def __init__(self, client: Any, canned: CannedEngine) -> None:
        self.client, self.canned = client, canned

    async def send(self, topic: str, value: bytes, key: bytes | None = None, partition: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[None]:
        from services.contracts import envelope as env

        outcome = await self.canned.submit(key or b"", orjson.loads(value), 0.0)
        reply = orjson.dumps({env.REPLY_DECISION: outcome.decision})
        loop = asyncio.get_running_loop()
        loop.call_soon(self._deliver, headers, reply)
        delivery: asyncio.Future[None] = loop.create_future()
        delivery.set_result(None)
        return delivery

    def _deliver(self, headers: list[tuple[str, bytes]] | None, value: bytes) -> None:
        from services.contracts import envelope as env

        corr = dict(headers or ()).get(env.CORRELATION_ID)
        fut = self.client._pending.get(corr) if corr else None
        if fut is not None and not fut.done():
            fut.set_result(orjson.loads(value))


class GcClock:
    """Time spent in the cyclic garbage collector, per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._t0
            self.counts[info["generation"]] += 1


async def run(requests: int, alerts: int, freeze: bool = False, engine_client: bool = False) -> dict[str, Any]:
    from services.common.settings import load_settings
    from services.ingress.app import create_app
    from services.ingress.engine_client import EngineClient

    settings = load_settings({"PRESETTLE_TOPIC_PREFIX": "benchi"})
    app = create_app(settings)
    app.state.engine_client = CannedEngine(alerts)
    if engine_client:  # the real request/reply bookkeeping over a loopback producer
        client = EngineClient(settings)
        client._producer = LoopbackProducer(client, CannedEngine(alerts))  # type: ignore[assignment]
        client._reply_routes = client._routes(client.reply_topic, list(range(settings.partitions)))
        client.available = True
        app.state.engine_client = client
    traffic = Traffic("H1", patients=1000)
    bodies = [orjson.dumps(traffic.event()) for _ in range(requests)]
    statuses: list[int] = []

    async def call(body: bytes) -> bytes:
        sent = False
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/events", "raw_path": b"/v1/events", "query_string": b"",
                 "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
                 "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                             (b"x-api-key", b"dev-key-h1"), (b"content-length", str(len(body)).encode())]}
        await app(scope, receive, send)
        return b"".join(chunks)

    for body in bodies[:200]:  # warm-up: imports, caches, first-call paths
        await call(body)
    statuses.clear()
    import gc

    if freeze:  # what a gc.freeze() after start-up would save
        gc.collect()
        gc.freeze()
    clock = GcClock()
    gc.callbacks.append(clock)
    walls: list[float] = []
    cpu0 = time.process_time()
    for body in bodies:
        t0 = time.perf_counter()
        answer = await call(body)
        walls.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    gc.callbacks.remove(clock)
    last = orjson.loads(answer)
    return {
        "requests": requests, "alerts_per_answer": alerts,
        "statuses": sorted(set(statuses)), "answer_alerts": len(last.get("alerts", [])),
        "cpu_us_per_request": round(cpu * 1e6 / requests, 1),
        "wall_p50_us": round(statistics.median(walls) * 1e6, 1),
        "engine_client": engine_client, "gc_frozen": freeze, "gc_us_per_request": round(sum(clock.seconds) * 1e6 / requests, 1),
        "gc_collections": clock.counts, "gc_ms_by_generation": [round(x * 1000, 1) for x in clock.seconds],
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="measured requests (3000)")
    parser.add_argument("--alerts", type=int, default=2, help="alerts in each answer (2, as bench_e2e's traffic)")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after the warm-up (what freezing the start-up objects would save)")
    parser.add_argument("--engine-client", action="store_true",
                        help="answer through the real EngineClient (correlation, headers, budget waits) over a "
                        "loopback producer that acknowledges at once and replies on the next loop turn")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.alerts < 0:
        parser.error("--requests must be at least 1 and --alerts not negative")
    import logging

    logging.getLogger("presettle").setLevel(logging.WARNING)
    result = asyncio.run(run(args.requests, args.alerts, args.gc_freeze, args.engine_client))
    print(orjson.dumps(result).decode(), flush=True)
    return 0 if result["statuses"] == [200] else 1


if __name__ == "__main__":
    sys.exit(main())

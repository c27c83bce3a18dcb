"""The whole service on one machine: broker (embedded unless configured), workers, ingress.

Used by ``make run`` / ``presettle run`` (``python -m services.stack``) and by the end-to-end tests,
so both start the service the same way. The parts: broker, workers, the decision-log sink
(``PRESETTLE_SINK_ENABLED``, on by default) and the ingress. Every part is a child process; Ctrl-C
(SIGINT) or SIGTERM stops the ingress and the workers (SIGTERM, then SIGKILL
after 10 s), then the broker.

Once started, the stack is supervised (:meth:`Stack.supervise_once`, every
0.3 s): a worker, the sink or the ingress that exits is restarted after a back-off (1 s,
doubling to 30 s; reset once it stayed up 60 s), logged and counted
(``Stack.restarts``). An embedded broker that dies is restarted on its port,
loudly — its memory-only contents (topics, audit records, offsets, events in
flight) are gone — its topics are re-created, and the workers and the ingress
are restarted against the empty broker. Patient state survives with the
persistent store (``PRESETTLE_STORE=rocksdict://``, the default): each worker
re-seeds the empty changelog from its local store (services/stream/store.py);
with ``memory://`` it is gone too. One child dying never stops the stack.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.common import logs
from services.common.broker import (
    REPLY_TOPIC_CONFIG,
    EmbeddedBroker,
    ensure_topics,
    port_open,
    service_topics,
    topic_configs,
)
from services.common.kafka_security import aiokafka_kwargs
from services.common.settings import Settings, settings_or_exit

log = logging.getLogger("presettle.stack")


def _say(msg: str) -> None:
    log.info(msg)


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    log_dir: Path | None = None
    broker: EmbeddedBroker | None = None
    workers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    ingress: subprocess.Popen[bytes] | None = None
    sink: subprocess.Popen[bytes] | None = None
    # Supervision: restarts per part; per part, when it was started, its back-off, when it is due.
    restarts: collections.Counter[str] = field(default_factory=collections.Counter)
    started_at: dict[str, float] = field(default_factory=dict)
    backoff: dict[str, float] = field(default_factory=dict)
    due: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    def _child_env(self, **extra: str) -> dict[str, str]:
        env = dict(self.env)
        env["PRESETTLE_KAFKA_BOOTSTRAP"] = self.bootstrap
        if self.broker is not None:  # the ingress watches the embedded broker's partition lengths
            env["PRESETTLE_EMBEDDED_BROKER"] = "true"
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(extra)
        return env

    def _out(self, name: str) -> int | None:
        if self.log_dir is None:
            return None  # inherit: the foreground terminal
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return os.open(self.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out = self._out(name)
        try:
            return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                                    start_new_session=True)
        finally:
            if out is not None:
                os.close(out)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap if self.broker else self.settings.bootstrap

    # -- parts ---------------------------------------------------------------
    def start_broker(self) -> None:
        if self.settings.kafka_bootstrap:
            _say(f"using Kafka at {self.settings.kafka_bootstrap} (PRESETTLE_KAFKA_BOOTSTRAP)")
        else:
            self.broker = EmbeddedBroker(self.settings.embedded_broker_port).start()
            _say(f"embedded broker (Tansu, memory only) on {self.broker.bootstrap}")
        self.create_topics()

    def create_topics(self) -> None:
        s = self.settings
        topics = service_topics(s) | {s.reply_topic(s.instance_id): s.partitions}
        configs = topic_configs(s) | {s.reply_topic(s.instance_id): REPLY_TOPIC_CONFIG}
        created = asyncio.run(ensure_topics(self.bootstrap, topics, s.replication_factor, configs=configs,
                                            security=aiokafka_kwargs(s)))
        if created:
            _say(f"created topics: {', '.join(sorted(created))}")

    def start_worker(self, index: int = 0) -> subprocess.Popen[bytes]:
        port = self.settings.worker_metrics_port
        env = self._child_env(
            PRESETTLE_WORKER_NAME=f"worker-{index}",
            PRESETTLE_WORKER_METRICS_PORT=str(port + index if port else 0),
        )
        proc = self._spawn(f"worker-{index}", [sys.executable, "-m", "services.stream"], env)
        self.workers[index] = proc
        self.started_at[f"worker-{index}"] = time.monotonic()
        return proc

    def kill_worker(self, index: int = 0) -> None:
        proc = self.workers.pop(index)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def start_sink(self) -> None:
        """The decision-log sink (services/decisionlog/sink.py), unless PRESETTLE_SINK_ENABLED=false."""
        self.sink = self._spawn("sink", [sys.executable, "-m", "services.decisionlog.sink"], self._child_env())
        self.started_at["sink"] = time.monotonic()

    def start_ingress(self) -> None:
        s = self.settings
        args = [sys.executable, "-m", "uvicorn", "services.ingress.app:app", "--host", s.http_host,
                "--port", str(s.http_port), "--no-access-log", "--log-level", "warning",
                "--loop", "uvloop", "--http", "httptools", "--timeout-graceful-shutdown", "5"]
        self.ingress = self._spawn("ingress", args, self._child_env())
        self.started_at["ingress"] = time.monotonic()

    def wait_healthy(self, timeout: float = 60.0, should_stop: Callable[[], bool] = lambda: False) -> float:
        """Poll /healthz until 200; return the seconds it took (InterruptedError when told to stop)."""
        t0 = time.monotonic()
        last = "no answer"
        while time.monotonic() - t0 < timeout:
            if should_stop():
                raise InterruptedError("stopped during start-up")
            for name, proc in self.children():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - t0
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")[:200]
            except OSError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise TimeoutError(f"/healthz not 200 within {timeout} s: {last}")

    def children(self) -> list[tuple[str, subprocess.Popen[bytes]]]:
        out = [(f"worker-{i}", p) for i, p in self.workers.items()]
        if self.sink:
            out.append(("sink", self.sink))
        if self.ingress:
            out.insert(0, ("ingress", self.ingress))
        return out

    # -- supervision ----------------------------------------------------------
    BACKOFF_START_S = 1.0
    BACKOFF_MAX_S = 30.0
    STABLE_AFTER_S = 60.0

    def _schedule_restart(self, name: str, code: int | None) -> None:
        now = time.monotonic()
        if now - self.started_at.get(name, now) >= self.STABLE_AFTER_S:
            self.backoff.pop(name, None)  # it had been up a while: restart promptly
        delay = self.backoff.get(name, self.BACKOFF_START_S)
        self.backoff[name] = min(self.BACKOFF_MAX_S, delay * 2)
        self.due[name] = now + delay
        log.warning(f"{name} exited with code {code}; restarting in {delay:.0f} s "
             f"(restart {self.restarts[name] + 1} of {name})")

    def supervise_once(self) -> None:
        """Restart what died (broker first); call every fraction of a second while serving."""
        if self.broker is not None and self.broker.proc is not None and self.broker.proc.poll() is not None:
            self._restart_broker(self.broker.proc.returncode)
            return
        now = time.monotonic()
        for name, proc in self.children():
            if proc.poll() is not None and name not in self.due:
                self._schedule_restart(name, proc.returncode)
        for name, when in list(self.due.items()):
            if now < when:
                continue
            del self.due[name]
            self.restarts[name] += 1
            if name == "ingress":
                self.start_ingress()
            elif name == "sink":
                self.start_sink()
            else:
                self.start_worker(int(name.rsplit("-", 1)[1]))
            log.warning(f"{name} restarted (restarts so far: {dict(self.restarts)})")

    def _restart_broker(self, code: int | None) -> None:
        assert self.broker is not None
        bar = "!" * 78
        log.error(bar)
        log.error(f"THE EMBEDDED BROKER DIED (exit code {code}). It kept everything in memory: every topic, every")
        log.error("audit record, every committed offset and the events in flight are GONE. Restarting it empty,")
        log.error("re-creating the topics and restarting the workers and the ingress against it.")
        if self.settings.store == "memory://":
            log.error("PRESETTLE_STORE=memory://: all patient state is GONE too.")
        else:
            log.error("Patient state: each worker re-seeds the empty changelog from its local store.")
        log.error(bar)
        for _, proc in self.children():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.due.clear()
        port = self.broker.port
        deadline = time.monotonic() + 10
        while port_open("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.broker = EmbeddedBroker(port).start()
        self.create_topics()
        for index in sorted(self.workers):
            self.start_worker(index)
        if self.sink is not None:
            self.start_sink()
        self.start_ingress()
        self.restarts["broker"] += 1
        log.warning(f"embedded broker restarted on {self.broker.bootstrap} (broker restarts: {self.restarts['broker']})")

    def start(self) -> "Stack":
        self.start_broker()
        for i in range(self.settings.workers):
            self.start_worker(i)
        if self.settings.sink_enabled:
            self.start_sink()
        self.start_ingress()
        return self

    def stop(self) -> None:
        for _, proc in self.children():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in self.children():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.workers.clear()
        self.ingress = None
        self.sink = None
        if self.broker:
            self.broker.stop()
            self.broker = None


def main() -> int:
    settings = settings_or_exit()
    logs.setup("stack", settings.log_format, settings.log_level)
    stack = Stack(settings)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        if settings.dev_keys:
            _say("development API keys (PRESETTLE_API_KEYS unset; refused when PRESETTLE_ENV=production):")
            for key, inst in settings.institution_keys().items():
                _say(f"  X-API-Key: {key}  → institution {inst}")
            _say(f"  admin key: {', '.join(settings.admin_key_list())}")
        _say("waiting for a round trip through the worker (/healthz) …")
        took = stack.wait_healthy(90, should_stop=lambda: stopping)
        _say(f"ready in {took:.1f} s: {stack.url}  (docs {stack.url}/docs, metrics {stack.url}/metrics); Ctrl-C stops")
        while not stopping:
            try:
                stack.supervise_once()
            except Exception as exc:  # a restart failed: say so, try again on the next round
                log.error("supervision: %s: %s; retrying", type(exc).__name__, exc)
                time.sleep(2)
            time.sleep(0.3)
        return 0
    except InterruptedError:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        _say("stopping …")
        stack.stop()
        _say("stopped")


if __name__ == "__main__":
    sys.exit(main())

"""Kafka over TLS for real: Debian's stunnel terminates TLS in front of the embedded broker.

The broker (Tansu) speaks plaintext on one port and advertises the stunnel port, so every
client — the ingress producer, reply consumer and admin, the live page's consumer, the faust
worker — connects (and reconnects after metadata) through TLS, verifying the test CA and the
host name. A whole round trip (HTTP event → worker → reply) must succeed over it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.common.broker import EmbeddedBroker, free_port, port_open
from tests.conftest import ARTIFACTS, start_stack
from tests.factories import dx, event, uid

pytestmark = pytest.mark.e2e

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
OPENSSL = shutil.which("openssl")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL or "openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_server_cert(where: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=PreSettle test CA",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=where)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
             "-out", "server.csr", cwd=where)
    (where / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=where)
    return where / "ca.pem", where / "server.pem", where / "server.key"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(TLS bootstrap address, CA file, stunnel log) with the broker behind stunnel."""
    if STUNNEL is None:
        pytest.skip("Debian package 'stunnel4' is not installed (tests/setup_system.py could not install it)")
    if OPENSSL is None:
        pytest.skip("the openssl command is needed to make the test CA")
    where = tmp_path_factory.mktemp("kafka-tls")
    ca, cert, key = make_ca_and_server_cert(where)
    plain, tls = free_port(), free_port()
    log = ARTIFACTS / "logs" / "stunnel-kafka.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    conf = where / "stunnel.conf"
    conf.write_text(
        f"foreground = yes\npid =\ndebug = 5\noutput = {log}\n"
        f"[kafka]\naccept = 127.0.0.1:{tls}\nconnect = 127.0.0.1:{plain}\ncert = {cert}\nkey = {key}\n",
        encoding="utf-8",
    )
    broker = EmbeddedBroker(plain, advertised_port=tls).start()
    proc = subprocess.Popen([STUNNEL, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", tls):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stunnel did not listen on {tls}: {log.read_text(encoding='utf-8')[-2000:]}")
            time.sleep(0.1)
        yield f"127.0.0.1:{tls}", ca, log
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()


def test_a_round_trip_through_tls(tls_broker: tuple[str, Path, Path]) -> None:
    bootstrap, ca, log = tls_broker
    stack = start_stack("kafka-tls", PRESETTLE_KAFKA_BOOTSTRAP=bootstrap, PRESETTLE_KAFKA_SSL_CAFILE=str(ca),
                        PRESETTLE_KAFKA_SSL_CHECK_HOSTNAME="true")
    try:
        with httpx.Client(base_url=stack.url, headers={"X-API-Key": "dev-key-h1"}, timeout=30) as client:
            answer = client.post("/v1/events", json=event(patient=uid("PTLS"), gender="F",
                                                          diagnoses=[dx("N40", name="前列腺增生")]))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["engine_status"] == "evaluated", body
            assert "R03" in [a["rule_id"] for a in body["alerts"]]
            health = client.get("/healthz").json()
            assert health["ok"] is True, health
            # Feedback goes through the worker's alert index over the same TLS connections.
            alert_id = next(a["alert_id"] for a in body["alerts"] if a["rule_id"] == "R03")
            r = client.post(f"/v1/alerts/{alert_id}/feedback", json={"outcome": "accepted"})
            assert r.status_code == 200, r.text
    finally:
        stack.stop()
    text = log.read_text(encoding="utf-8")
    # The clients came through the terminator: stunnel forwards a connection to the broker only
    # after its TLS handshake (ingress producer, consumers and admin, the worker's clients).
    # (Its "unexpected eof" lines are the ingress's plain TCP reachability checks.)
    assert text.count("s_connect: connected") >= 4, text[-2000:]
    assert "certificate verify failed" not in text and "alert" not in text.lower().replace("alert-index", "")


def test_a_plaintext_client_cannot_use_the_tls_port(tls_broker: tuple[str, Path, Path]) -> None:
    """The TLS listener really is TLS: without the settings, a client gets nowhere (a clear error, no hang)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    from services.common.kafka_security import aiokafka_kwargs
    from services.common.settings import load_settings

    bootstrap, ca, _ = tls_broker

    async def topics(**security: object) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **security)
        try:
            await asyncio.wait_for(admin.start(), 10)
            return list(await admin.list_topics())
        finally:
            await admin.close()

    with pytest.raises(Exception):  # noqa: B017 - any connection error; the point is: not through
        asyncio.run(topics())
    settings = load_settings({"PRESETTLE_KAFKA_SSL_CAFILE": str(ca)})
    assert isinstance(asyncio.run(topics(**aiokafka_kwargs(settings))), list)

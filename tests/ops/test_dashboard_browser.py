"""The live page in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

Events go in through the public API; the page (initial snapshot + server-sent events) must show
them, then show new ones live without a reload. The screenshot is kept in .artifacts/dashboard.png.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.privacy import mask
from services.stack import Stack
from tests.factories import uid
from tests.ops.helpers import post_ok, r03_event, r19_events, stop_process, wait_for

pytestmark = pytest.mark.e2e

websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium over CDP")

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None)
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--remote-allow-origins=*",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1920,1080"]


class CDP:
    """The few DevTools calls this test needs, over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        self.ws.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[CDP]:
    if CHROMIUM is None:
        pytest.skip("Debian package 'chromium' is not installed (tests/setup_system.py could not install it)")
    profile = Path(tempfile.mkdtemp(prefix="presettle-chromium-"))
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "chromium.log", "wb")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cdp: CDP | None = None
    try:
        def port() -> int | None:
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited with {proc.returncode}; see .artifacts/chromium.log")
            active = profile / "DevToolsActivePort"
            text = active.read_text().split("\n") if active.exists() else []
            return int(text[0]) if text and text[0].strip().isdigit() else None

        devtools = wait_for(port, timeout=30, what="chromium DevTools port")

        def page() -> str | None:
            targets = httpx.get(f"http://127.0.0.1:{devtools}/json/list", timeout=5).json()
            return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

        cdp = CDP(wait_for(page, timeout=15, what="a page target"))
        cdp.call("Page.enable")
        cdp.call("Runtime.enable")
        cdp.call("Emulation.setDeviceMetricsOverride", width=1920, height=1080, deviceScaleFactor=1, mobile=False)
        yield cdp
    finally:
        if cdp is not None:
            cdp.close()
        stop_process(proc)
        log.close()
        shutil.rmtree(profile, ignore_errors=True)


def rows(cdp: CDP) -> list[dict[str, str]]:
    return cdp.js("""Array.from(document.querySelectorAll('#recent tbody tr')).map(tr => ({
        rule: tr.dataset.rule, decision: tr.dataset.decision,
        cells: Array.from(tr.cells).map(td => td.textContent)}))""")


def test_live_page_shows_alerts_and_updates_without_reload(browser: CDP, stack: Stack, client: httpx.Client) -> None:
    cdp = browser
    wait_for(lambda: client.get("/dashboard/data").json()["feed_ready"], what="the audit feed")
    # 1. An alert before the page opens: the initial snapshot must carry it.
    first_patient = uid("PBROWSER")
    first = post_ok(client, r03_event(first_patient))
    cdp.call("Page.navigate", url=stack.url + "/dashboard")
    wait_for(lambda: cdp.js("document.readyState") == "complete", what="page load")
    wait_for(lambda: first["decision_id"] in [r["decision"] for r in rows(cdp)], timeout=15,
             what="the first alert in the recent-alerts table")
    wait_for(lambda: "Live" in cdp.js("document.getElementById('conn').textContent"), timeout=15,
             what="the SSE connection")
    row = next(r for r in rows(cdp) if r["decision"] == first["decision_id"])
    assert row["rule"] == "R03"
    assert mask(first_patient) in row["cells"] and "H1" in row["cells"]
    assert any("R03" in c and "诊断与性别不符" in c for c in row["cells"])
    version = int(cdp.js("document.body.dataset.version"))
    alerts_before = int(cdp.js("document.body.dataset.alerts"))

    # 2. New alerts while the page is open: pushed over SSE, no reload.
    cdp.js("window.__marker = 'same-document'")
    second_patient = uid("PBROWSER")
    post_ok(client, r03_event(second_patient))
    r19_first, r19_second = r19_events()
    post_ok(client, r19_first)
    r19 = post_ok(client, r19_second)
    wait_for(lambda: r19["decision_id"] in [r["decision"] for r in rows(cdp)], timeout=15,
             what="the R19 alert pushed to the open page")
    assert cdp.js("window.__marker") == "same-document", "the page was not reloaded"
    assert int(cdp.js("document.body.dataset.version")) > version
    assert int(cdp.js("document.body.dataset.alerts")) >= alerts_before + 2
    recent = rows(cdp)
    assert any(r["rule"] == "R03" and mask(second_patient) in r["cells"] for r in recent)
    top_rules = cdp.js("Array.from(document.querySelectorAll('#top-rules li')).map(li => li.dataset.rule)")
    assert {"R03", "R19"} <= set(top_rules)
    chart_rules = cdp.js("Array.from(new Set(Array.from(document.querySelectorAll('#chart rect'))"
                         ".map(r => r.dataset.rule)))")
    assert {"R03", "R19"} <= set(chart_rules)
    institutions = cdp.js("Array.from(document.querySelectorAll('#top-institutions li'))"
                          ".map(li => li.dataset.institution)")
    assert "H1" in institutions
    kpis = {k: cdp.js(f"document.getElementById('kpi-{k}').textContent") for k in ("alerts", "p50", "p99")}
    assert int(kpis["alerts"]) >= 3
    wait_for(lambda: cdp.js("document.getElementById('kpi-p99').textContent") not in ("", "—"), timeout=10,
             what="latency percentiles on the page")

    text = cdp.js("document.body.innerText")
    for patient in (first_patient, second_patient):
        assert patient not in text, "patient ids are masked on the page"
    for label in ("每分钟预警", "Alerts per minute", "最新预警", "Recent alerts", "机构排行", "Top institutions"):
        assert label in text

    time.sleep(0.6)  # let the row highlight settle a little for the picture
    shot = cdp.call("Page.captureScreenshot", format="png")
    ARTIFACTS.mkdir(exist_ok=True)
    png = base64.b64decode(shot["data"])
    (ARTIFACTS / "dashboard.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

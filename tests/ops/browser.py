"""Debian's headless Chromium, driven over the DevTools protocol (the few calls the ops tests need)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.helpers import stop_process, wait_for

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None)
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--remote-allow-origins=*",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1920,1080"]
# A hospital intranet: every host name but loopback fails to resolve.
OFFLINE = ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']


class CDP:
    """One page's DevTools websocket; protocol events are kept in ``events``."""

    def __init__(self, ws_url: str, timeout: float = 30) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

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
            if "method" in message:
                self.events.append(message)

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, name: str) -> bytes:
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / name).write_bytes(png)
        return png

    def close(self) -> None:
        self.ws.close()


@contextmanager
def chromium(*extra_flags: str, log_name: str = "chromium.log", timeout: float = 30) -> Iterator[CDP]:
    """A headless Chromium with one page, Page/Runtime enabled, 1920×1080 (skips when not installed).

    ``timeout``: how long one DevTools call may wait (a page busy parsing a large script answers late).
    """
    pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium over CDP")
    if CHROMIUM is None:
        pytest.skip("Debian package 'chromium' is not installed (tests/setup_system.py could not install it)")
    profile = Path(tempfile.mkdtemp(prefix="presettle-chromium-"))
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "wb")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "about:blank"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cdp: CDP | None = None
    try:
        def port() -> int | None:
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited with {proc.returncode}; see .artifacts/{log_name}")
            active = profile / "DevToolsActivePort"
            text = active.read_text().split("\n") if active.exists() else []
            return int(text[0]) if text and text[0].strip().isdigit() else None

        devtools = wait_for(port, timeout=30, what="chromium DevTools port")

        def page() -> str | None:
            targets = httpx.get(f"http://127.0.0.1:{devtools}/json/list", timeout=5).json()
            return next((t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page"), None)

        cdp = CDP(wait_for(page, timeout=15, what="a page target"), timeout)
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

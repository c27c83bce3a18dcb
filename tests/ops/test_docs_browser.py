"""/docs and /redoc in Debian's headless Chromium on an intranet: every host name but loopback fails to
resolve, and the pages must still render from the ingress's own assets. Swagger UI's Authorize button
takes an API key and "Try it out" then gets a real decision. Screenshots in .artifacts/docs*.png."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from services.stack import Stack
from tests.ops.browser import CDP, OFFLINE, chromium
from tests.ops.helpers import wait_for

pytestmark = pytest.mark.e2e
PATIENCE = 120.0  # seconds to wait for the page; no speed is asserted


@pytest.fixture(scope="module")
def browser() -> Iterator[CDP]:
    # Patient: a 1.5 MB script on a busy 2-core machine parses slowly.
    with chromium(*OFFLINE, log_name="chromium-docs.log", timeout=120) as cdp:
        cdp.call("Network.enable")
        yield cdp


def requested_hosts(cdp: CDP) -> set[str]:
    """Hosts the page sent requests to (a request the page's CSP refused never leaves the browser)."""
    refused = {e["params"]["requestId"] for e in cdp.events
               if e["method"] == "Network.loadingFailed" and e["params"].get("blockedReason") == "csp"}
    urls = [e["params"]["request"]["url"] for e in cdp.events
            if e["method"] == "Network.requestWillBeSent" and e["params"]["requestId"] not in refused]
    return {urlsplit(u).netloc for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss")}


def click(cdp: CDP, selector: str, text: str = "") -> None:
    """Click the first element matching ``selector`` (and containing ``text``)."""
    found = cdp.js(f"""(() => {{
        const el = Array.from(document.querySelectorAll({json.dumps(selector)}))
            .find(e => e.textContent.includes({json.dumps(text)}));
        if (el) el.click();
        return !!el; }})()""")
    assert found, f"no {selector} containing {text!r}"


def test_swagger_ui_renders_offline_and_authorizes(browser: CDP, stack: Stack) -> None:
    cdp = browser
    cdp.events.clear()
    cdp.call("Page.navigate", url=stack.url + "/docs")
    wait_for(lambda: cdp.js("document.readyState") == "complete", timeout=PATIENCE, what="page load")
    wait_for(lambda: cdp.js("document.querySelectorAll('.opblock').length") >= 10, timeout=PATIENCE,
             what="the operations rendered by Swagger UI")
    assert "PreSettle" in cdp.js("document.querySelector('.info .title').textContent")
    assert cdp.js("document.querySelectorAll('button.authorize').length") >= 1, "no Authorize button"
    assert cdp.js("document.querySelectorAll('.opblock .authorization__btn').length") >= 5, "no padlocks"

    # Authorize with an institution key, then "Try it out" on POST /v1/events with the attached example.
    click(cdp, "button.authorize")
    wait_for(lambda: cdp.js("!!document.querySelector('.modal-ux input')"), timeout=PATIENCE,
             what="the Authorize dialog")
    assert "X-API-Key" in cdp.js("document.querySelector('.modal-ux').textContent")
    cdp.call("DOM.enable")
    cdp.js("document.querySelector('.modal-ux input').focus()")
    cdp.call("Input.insertText", text="dev-key-h1")
    click(cdp, ".modal-ux button.modal-btn.auth", "Authorize")
    wait_for(lambda: "Logout" in cdp.js("document.querySelector('.modal-ux').textContent"), timeout=PATIENCE,
             what="authorized")
    click(cdp, ".modal-ux button.btn-done", "Close")
    click(cdp, "#operations-native-post_event_v1_events_post .opblock-summary-control")
    wait_for(lambda: cdp.js("!!document.querySelector('#operations-native-post_event_v1_events_post "
                            ".try-out__btn')"), timeout=PATIENCE, what="the expanded operation")
    click(cdp, "#operations-native-post_event_v1_events_post .try-out__btn")
    wait_for(lambda: cdp.js("!!document.querySelector('#operations-native-post_event_v1_events_post "
                            ".execute')"), timeout=PATIENCE, what="the Execute button")
    click(cdp, "#operations-native-post_event_v1_events_post .execute")
    status = wait_for(lambda: cdp.js("""(() => { const c = document.querySelector(
        '#operations-native-post_event_v1_events_post .live-responses-table tbody .response-col_status');
        return c ? c.textContent.trim() : null; })()"""), timeout=PATIENCE, what="the live response")
    body = cdp.js("document.querySelector('#operations-native-post_event_v1_events_post "
                  ".live-responses-table .microlight').textContent")
    assert status.startswith("200"), (status, body)
    assert json.loads(body)["engine_status"] == "evaluated", body

    time.sleep(0.3)
    png = cdp.screenshot("docs.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    own = urlsplit(stack.url).netloc
    assert requested_hosts(cdp) == {own}, requested_hosts(cdp)
    failed = [e["params"] for e in cdp.events if e["method"] == "Network.loadingFailed"]
    assert not failed, failed


def test_redoc_renders_offline(browser: CDP, stack: Stack) -> None:
    cdp = browser
    cdp.events.clear()
    cdp.call("Page.navigate", url=stack.url + "/redoc")
    wait_for(lambda: cdp.js("document.readyState") == "complete", timeout=PATIENCE, what="page load")
    wait_for(lambda: "PreSettle" in (cdp.js("(document.querySelector('.api-info h1') || {}).textContent || ''")),
             timeout=PATIENCE, what="ReDoc's title")
    text = cdp.js("document.body.innerText")
    assert "/v1/events" in text and "X-API-Key" in text
    cdp.screenshot("docs-redoc.png")
    assert requested_hosts(cdp) == {urlsplit(stack.url).netloc}, requested_hosts(cdp)

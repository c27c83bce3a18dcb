"""The live page in a real browser: Debian's headless Chromium, driven over the DevTools protocol.

Events go in through the public API; the page (initial snapshot + server-sent events) must show
them, then show new ones live without a reload. The screenshot is kept in .artifacts/dashboard.png.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.common.privacy import mask
from services.stack import Stack
from tests.factories import uid
from tests.ops.browser import CDP, chromium
from tests.ops.helpers import post_ok, r03_event, r19_events, wait_for

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def browser() -> Iterator[CDP]:
    with chromium() as cdp:
        yield cdp


def rows(cdp: CDP) -> list[dict[str, str]]:
    return cdp.js("""Array.from(document.querySelectorAll('#recent tbody tr')).map(tr => ({
        rule: tr.dataset.rule, decision: tr.dataset.decision,
        cells: Array.from(tr.cells).map(td => td.textContent)}))""")


def test_live_page_shows_alerts_and_updates_without_reload(browser: CDP, stack: Stack, client: httpx.Client) -> None:
    cdp = browser
    wait_for(lambda: client.get("/dashboard/data").json()["feed_ready"], what="the audit feed")
    # Without a key the page asks for one and shows nothing.
    cdp.call("Network.enable")
    cdp.call("Network.clearBrowserCookies")
    cdp.call("Page.navigate", url=stack.url + "/dashboard")
    wait_for(lambda: cdp.js("document.readyState") == "complete", what="page load")
    wait_for(lambda: cdp.js("getComputedStyle(document.getElementById('login')).display") == "flex",
             timeout=15, what="the key prompt")
    assert rows(cdp) == []
    # 1. An alert before the page opens: the initial snapshot must carry it.
    first_patient = uid("PBROWSER")
    first = post_ok(client, r03_event(first_patient))
    # The bureau's key, passed once in the address: exchanged for a session cookie, removed from the URL.
    cdp.call("Page.navigate", url=stack.url + "/dashboard?key=dev-admin-key")
    wait_for(lambda: cdp.js("document.readyState") == "complete", what="page load")
    wait_for(lambda: first["decision_id"] in [r["decision"] for r in rows(cdp)], timeout=15,
             what="the first alert in the recent-alerts table")
    wait_for(lambda: "Live" in cdp.js("document.getElementById('conn').textContent"), timeout=15,
             what="the SSE connection")
    assert "key=" not in cdp.js("window.location.href"), "the key left the address bar"
    assert "dev-admin-key" not in cdp.js("document.cookie"), "the session cookie is HttpOnly and holds no key"
    assert "全区" in cdp.js("document.getElementById('scope').textContent")
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
    png = cdp.screenshot("dashboard.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

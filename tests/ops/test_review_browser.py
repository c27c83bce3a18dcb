"""The review workbench (/review) in Debian's headless Chromium: a reviewer confirms a case, the
institution appeals it, a senior reviewer takes and closes it — three keys, one page, clicks only.
The screenshot is kept in .artifacts/review.png."""

from __future__ import annotations

import json

import httpx
import pytest

from services.stack import Stack
from tests.factories import dx, event, uid
from tests.ops.browser import CDP, chromium
from tests.ops.helpers import post_ok, wait_for

pytestmark = pytest.mark.e2e


def sign_in(cdp: CDP, key: str, role: str) -> None:
    cdp.js("document.getElementById('logout').click()")
    wait_for(lambda: cdp.js("getComputedStyle(document.getElementById('login')).display") == "flex",
             what="the key prompt")
    cdp.js(f"document.getElementById('key').value = {json.dumps(key)}; "
           "document.getElementById('login-form').requestSubmit()")
    wait_for(lambda: cdp.js("document.body.dataset.role") == role, what=f"signed in as {role}")


def open_case(cdp: CDP, case_id: str) -> None:
    sel = json.dumps(f'#queue tr[data-case="{case_id}"]')
    wait_for(lambda: cdp.js(f"!!document.querySelector({sel})"), timeout=20, what="the case in the queue")
    cdp.js(f"document.querySelector({sel}).click()")
    wait_for(lambda: cdp.js("document.body.dataset.case") == case_id, what="the case detail")


def act(cdp: CDP, action: str, state: str, reason: str = "", attachments: str = "") -> None:
    button = json.dumps(f'#actions button[data-action="{action}"]')
    wait_for(lambda: cdp.js(f"!!document.querySelector({button})"), what=f"the {action} button")
    cdp.js(f"document.getElementById('reason').value = {json.dumps(reason)}; "
           f"document.getElementById('attachments').value = {json.dumps(attachments)}; "
           f"document.querySelector({button}).click()")
    wait_for(lambda: cdp.js("document.body.dataset.state") == state, what=f"state {state} after {action}")


def test_reviewer_confirms_institution_appeals_senior_closes(stack: Stack, client: httpx.Client) -> None:
    answer = post_ok(client, event(patient=uid("PREVIEW"), gender="F", scene=6, diagnoses=[dx("N40")]))
    cases = wait_for(lambda: client.get("/v1/cases", params={"decision_id": answer["decision_id"]}).json()["cases"],
                     timeout=30, what="the case opened by the sink")
    case_id = cases[0]["case_id"]
    with chromium(log_name="chromium-review.log") as cdp:
        cdp.call("Page.navigate", url=stack.url + "/review")
        wait_for(lambda: cdp.js("document.readyState") == "complete", what="page load")
        sign_in(cdp, "dev-reviewer-key", "reviewer")
        open_case(cdp, case_id)
        assert cdp.js("document.querySelector('#alerts tbody tr').dataset.rule") == "R03"
        assert cdp.js("document.querySelectorAll('#recent tbody tr').length") >= 1
        assert not cdp.js("!!document.querySelector('#actions button[data-action=\"appeal\"]')")
        act(cdp, "confirm", "initial_review", reason="诊断与性别不符，属实")

        sign_in(cdp, "dev-key-h1", "institution")
        open_case(cdp, case_id)
        act(cdp, "appeal", "appealed", reason="录入错误，已更正", attachments="https://his.example/emr/42\n更正说明")

        sign_in(cdp, "dev-senior-key", "senior_reviewer")
        open_case(cdp, case_id)
        act(cdp, "take", "re_review")
        act(cdp, "overturn", "closed", reason="申诉理由成立")
        history = cdp.js("Array.from(document.querySelectorAll('#history tbody tr')).map(tr => tr.dataset.action)")
        assert history == ["open", "confirm", "appeal", "take", "overturn"]
        png = cdp.screenshot("review.png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    case = client.get(f"/v1/cases/{case_id}").json()
    assert case["outcome"] == "dismissed"
    assert [h["actor"] for h in case["history"]] == ["system", "reviewer-1", "institution:H1", "senior-1", "senior-1"]
    assert case["history"][2]["attachments"] == ["https://his.example/emr/42", "更正说明"]

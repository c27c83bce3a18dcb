"""Risk lists and reports from the decision log (事后监管): ``/v1/risk/*``, ``/v1/reports/*``.

Everything stays inside the caller's scope (an institution sees its own figures). The monthly
report is one printable HTML page per institution (Chinese first, English second; the browser's
"Print → Save as PDF" makes the PDF — no PDF library in the service).
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from services.ingress.auth import PrincipalDep
from services.ingress.decisions import From, StoreDep, To, invalid, time_bound

router = APIRouter(tags=["risk and reports"])



@router.get("/v1/risk/{kind}")
def risk_list(kind: Literal["patients", "doctors", "institutions"], who: PrincipalDep, store: StoreDep,
              from_: From = None, to: To = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Entities ranked by alerts, amount at stake, confirmed cases and alert rate against their peers (same
    institution level; same institution and department), each score with its parts (``score_parts``)."""
    entries = store.risk(kind, who.scope, time_bound(from_, "from"), time_bound(to, "to", end=True), limit)
    return {"kind": kind, "formula": "alerts + amount/100 + 5×confirmed_cases + 10×max(0, rate_ratio−1)",
            "entries": entries}


@router.get("/v1/reports/summary")
def summary(who: PrincipalDep, store: StoreDep,
            group_by: Literal["institution", "rule", "region", "day", "month"] = "institution",
            from_: From = None, to: To = None) -> dict[str, Any]:
    """Per group: decisions, alert rate, amount at stake, feedback accepted vs overridden, cases by outcome,
    amount recovered."""
    rows = store.summary(group_by, who.scope, time_bound(from_, "from"), time_bound(to, "to", end=True))
    return {"group_by": group_by, "rows": rows}


def month_bounds(month: str) -> tuple[str, str]:
    try:
        first = date.fromisoformat(month + "-01")
    except ValueError:
        raise invalid("month", "expected YYYY-MM") from None
    nxt = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return first.isoformat(), nxt.isoformat()


def _table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body or '<tr><td colspan=9>无 none</td></tr>'}</tbody></table>"


@router.get("/v1/reports/monthly", response_class=HTMLResponse)
def monthly(who: PrincipalDep, store: StoreDep, institution: str,
            month: Annotated[str, Query(description="YYYY-MM", json_schema_extra={"pattern": r"^\d{4}-\d{2}$"})]
            ) -> HTMLResponse:
    """A printable monthly report of one institution (月度监管报告): totals, per rule, cases, largest alerts."""
    first, nxt = month_bounds(month)
    start, end = time_bound(first, "month"), time_bound(nxt, "month")
    own = who.scope.narrowed(institution)  # another institution's report: empty, as any read outside the scope
    rows = store.summary("institution", own, start, end) if own else []
    by_rule = store.summary("rule", own, start, end) if own else []
    top = store.top_alerts(own, start, end) if own else []
    t: dict[str, Any] = rows[0] if rows else {"decisions": 0, "alerts": 0, "alert_rate": 0.0, "amount": 0.0,
                              "feedback": {"accepted": 0, "overridden": 0},
                              "cases": {"open": 0, "dismissed": 0, "upheld": 0, "partially_upheld": 0},
                              "amount_recovered": 0.0}
    totals = _table(["决策数 decisions", "提醒数 alerts", "提醒率 alert rate", "涉及金额 amount (元)",
                     "采纳 accepted", "坚持 overridden", "追回金额 recovered (元)"],
                    [[t["decisions"], t["alerts"], f"{t['alert_rate']:.2%}", f"{t['amount']:.2f}",
                      t["feedback"]["accepted"], t["feedback"]["overridden"], f"{t['amount_recovered']:.2f}"]])
    cases = _table(["待办 open", "排除 dismissed", "维持 upheld", "部分维持 partially upheld"],
                   [[t["cases"]["open"], t["cases"]["dismissed"], t["cases"]["upheld"],
                     t["cases"]["partially_upheld"]]])
    rules = _table(["规则 rule", "提醒数 alerts", "涉及金额 amount", "采纳 accepted", "坚持 overridden"],
                   [[r["rule"], r["alerts"], f"{r['amount']:.2f}", r["feedback"]["accepted"],
                     r["feedback"]["overridden"]] for r in by_rule])
    largest = _table(["提醒 alert", "规则 rule", "级别 severity", "金额 amount", "日期 day"],
                     [[a["alert_id"], a["rule_id"], a["severity"] or "", f"{float(a['amount']):.2f}", a["day"]]
                      for a in top])
    page = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>{escape(institution)} {escape(month)} 月度监管报告 Monthly report</title>
<style>body{{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em;color:#111}}
h1{{font-size:1.4em}}table{{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}}
th,td{{border:1px solid #999;padding:4px 8px;text-align:left;font-size:.9em}}th{{background:#eee}}
@media print{{body{{margin:0}}}}</style></head><body>
<h1>医保基金监管月度报告 · Monthly supervision report</h1>
<p>定点机构 Institution: <b id="institution">{escape(institution)}</b> · 月份 Month: <b>{escape(month)}</b></p>
<h2>总体 Totals</h2>{totals}<h2>审核案件 Review cases</h2>{cases}
<h2>按规则 By rule</h2>{rules}<h2>金额最大的提醒 Largest alerts</h2>{largest}
<p><small>PreSettle 决策日志 decision log · 打印为 PDF: 浏览器"打印 → 另存为 PDF" (Print → Save as PDF)</small></p>
</body></html>"""
    return HTMLResponse(page)

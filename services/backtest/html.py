"""The backtest's HTML report: one self-contained page (inline CSS and SVG, no scripts, no fetches).

A summary table of every rule with alerts on either side, a chart per such rule (alerts per day,
baseline against candidate) and the example diffs of the JSON report. Pure: report dict in,
text out; every value from the report is escaped.
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape
from typing import Any

W, H, PAD = 640, 160, 34
BASE_COLOUR, CAND_COLOUR = "#8a8f98", "#1f6feb"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;margin:24px;color:#1c2128}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
td,th{border-bottom:1px solid #d0d7de;padding:3px 8px;text-align:right}td.l,th.l{text-align:left}
tr.changed td{background:#fff8c5}.gain{color:#1a7f37}.loss{color:#cf222e}.muted{color:#656d76}
.rule{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:12px 0}
.ex{font-size:13px;border-left:3px solid #d0d7de;padding-left:8px;margin:6px 0}code{font-size:12px}
"""


def _num(x: float) -> str:
    return f"{x:,.2f}" if isinstance(x, float) else f"{x:,}"


def _every_day(by_day: list[list[Any]], first: str | None, last: str | None) -> list[list[Any]]:
    """The days from ``first`` to ``last`` (the replay's dates), those without alerts as zeros."""
    counts = {row[0]: row for row in by_day}
    days = sorted(counts)
    start = date.fromisoformat(min([d for d in (first, days[0] if days else None) if d]))
    end = date.fromisoformat(max([d for d in (last, days[-1] if days else None) if d]))
    out: list[list[Any]] = []
    while start <= end and len(out) < 3660:
        key = start.isoformat()
        out.append(counts.get(key, [key, 0, 0]))
        start += timedelta(days=1)
    return out


def chart(by_day: list[list[Any]], first: str | None = None, last: str | None = None) -> str:
    """Alerts per day, baseline (grey) and candidate (blue), as an inline SVG line chart."""
    if not by_day:
        return ""
    by_day = _every_day(by_day, first, last)
    peak = max(max(b, c) for _, b, c in by_day) or 1
    n = len(by_day)
    xs = [PAD + (W - 2 * PAD) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    top, bottom = 22, H - 16  # the legend above the plot, the dates below

    def y(v: int) -> float:
        return bottom - (bottom - top) * v / peak

    def line(col: int, colour: str, width: float) -> str:
        pts = " ".join(f"{x:.1f},{y(row[col]):.1f}" for x, row in zip(xs, by_day, strict=True))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="{width}" points="{pts}"/>'

    base_y = y(0)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" '
        f'aria-label="alerts per day, baseline and candidate">'
        f'<line x1="{PAD}" y1="{base_y:.1f}" x2="{W - PAD}" y2="{base_y:.1f}" stroke="#d0d7de"/>'
        f'<text x="4" y="{y(peak) + 4:.1f}" font-size="10" fill="#656d76">{peak}</text>'
        f'<text x="4" y="{base_y + 4:.1f}" font-size="10" fill="#656d76">0</text>'
        f'<text x="{PAD}" y="{H - 2}" font-size="10" fill="#656d76">{escape(str(by_day[0][0]))}</text>'
        f'<text x="{W - PAD}" y="{H - 2}" font-size="10" fill="#656d76" text-anchor="end">'
        f'{escape(str(by_day[-1][0]))}</text>'
        + line(1, BASE_COLOUR, 3.2) + line(2, CAND_COLOUR, 1.4)  # where they agree: blue on grey
        + f'<text x="{W - PAD}" y="12" font-size="11" text-anchor="end"><tspan fill="{BASE_COLOUR}">— baseline</tspan>'
          f'<tspan fill="{CAND_COLOUR}" dx="10">— candidate</tspan></text></svg>'
    )


def _example(ex: dict[str, Any]) -> str:
    cls = "gain" if ex["change"] == "gained" else "loss"
    lines = ", ".join(
        f"{escape(str(ln.get('line_id')))} {escape(str(ln.get('name') or ln.get('code')))}"
        f" ×{escape(str(ln.get('quantity')))}" + (f" ({escape(str(ln['days_supply']))} d)" if ln.get("days_supply") else "")
        for ln in ex["lines"])

    def side(alerts: list[dict[str, Any]]) -> str:
        if not alerts:
            return '<span class="muted">no alert</span>'
        return "<br>".join(f"{escape(a['message_zh'])}<br><span class=\"muted\">{escape(a['message_en'])}</span>"
                           for a in alerts)

    who = f" · patient {escape(ex['patient'])}" if ex.get("patient") else ""
    return (f'<div class="ex"><b class="{cls}">{escape(ex["change"])}</b> · event <code>{escape(ex["event_id"])}</code>'
            f' · {escape(ex["occurred_at"])} · scene {ex["scene"]} · {escape(ex["institution"])}{who}'
            f'<br>lines: {lines or "—"}<table><tr><th class="l">baseline</th><th class="l">candidate</th></tr>'
            f'<tr><td class="l">{side(ex["baseline"])}</td><td class="l">{side(ex["candidate"])}</td></tr></table></div>')


def render(report: dict[str, Any]) -> str:
    rules = report["rules"]
    shown = [(rid, r) for rid, r in rules.items() if r["baseline"] or r["candidate"] or r["changed"]]
    head = ("<tr><th class='l'>rule</th><th class='l'>name</th><th>baseline</th><th>candidate</th><th>gained</th>"
            "<th>lost</th><th>patients</th><th>institutions</th><th>amount baseline</th><th>amount candidate</th></tr>")
    rows = "".join(
        f"<tr class=\"{'changed' if r['changed'] else ''}\"><td class='l'><a href='#{escape(rid)}'>{escape(rid)}</a></td>"
        f"<td class='l'>{escape(r['name_zh'])} <span class='muted'>{escape(r['name_en'])}</span></td>"
        f"<td>{_num(r['baseline'])}</td><td>{_num(r['candidate'])}</td>"
        f"<td class='gain'>{_num(r['gained'])}</td><td class='loss'>{_num(r['lost'])}</td>"
        f"<td>{_num(r['patients'])}</td><td>{_num(r['institutions'])}</td>"
        f"<td>{_num(r['amount_baseline'])}</td><td>{_num(r['amount_candidate'])}</td></tr>"
        for rid, r in shown)
    first = (report.get("first_event_at") or "")[:10] or None
    last = (report.get("last_event_at") or "")[:10] or None
    sections = []
    for rid, r in shown:
        examples = "".join(_example(ex) for ex in report["examples"] if ex["rule_id"] == rid)
        sections.append(
            f'<div class="rule" id="{escape(rid)}"><h2>{escape(rid)} {escape(r["name_zh"])} '
            f'<span class="muted">{escape(r["name_en"])}</span>{" · changed" if r["changed"] else ""}</h2>'
            f'baseline {_num(r["baseline"])} · candidate {_num(r["candidate"])} · '
            f'<span class="gain">+{_num(r["gained"])}</span> <span class="loss">−{_num(r["lost"])}</span>'
            f'<br>{chart(r["by_day"], first, last)}{examples}</div>')
    invalid = report.get("invalid_lines") or {"count": 0, "first": []}
    bad = ""
    if invalid["count"]:
        bad = (f"<h2>Invalid lines: {invalid['count']:,} (skipped)</h2><ul>"
               + "".join(f"<li>line {escape(str(b['line']))}: {escape(b['error'])}</li>" for b in invalid["first"])
               + "</ul>")
    timing = report.get("timing") or {}
    why = f" ({escape(report['independent_because'])})" if report.get("independent_because") else ""
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Backtest "
        f"{escape(report['candidate_revision'])} vs {escape(report['baseline_revision'])}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Backtest: candidate <code>{escape(report['candidate_revision'])}</code> against baseline "
        f"<code>{escape(report['baseline_revision'])}</code></h1>"
        f"<p>{report['events']:,} events ({report['duplicates']:,} retries applied once), "
        f"{escape(str(report['first_event_at']))} – {escape(str(report['last_event_at']))}, "
        f"{report['patients']:,} patients. Source: {escape(str(report.get('source', '')))}. "
        f"Changed rules: {escape(', '.join(report['changed_rules']) or 'none')}. Mode: {escape(report['mode'])}{why}."
        + (f" Replay {timing.get('replay_s')} s." if timing else "")
        + "</p><p class='muted'>gained: alerts only the candidate gives; lost: alerts only the baseline gives "
          "(matched per event by rule and lines). patients / institutions: those with a gained or lost alert.</p>"
        f"<table>{head}{rows}</table>{''.join(sections)}{bad}</body></html>"
    )

"""Pure: risk-list scores (锁定高风险医保账号和人员) and their explanation, from per-entity counts.

Each entity (a patient, a doctor, an institution) has, over the period: ``decisions``, ``alerts``,
``amount`` at stake, ``confirmed`` cases (confirmed at 初审 and not dismissed later) and a peer group
(institutions: the same institution level; doctors: the same institution and department; patients:
every patient in scope). Its alert rate (alerts per decision) is compared with its peer group's:
``rate_ratio`` = rate / peer rate. The score adds four parts, each shown:

    score = 1 × alerts + amount / 100 + 5 × confirmed + 10 × max(0, rate_ratio − 1)

so a score is always explained by the numbers behind it; the weights are :data:`WEIGHTS`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

WEIGHTS = {"alerts": 1.0, "amount_per_100_yuan": 1.0, "confirmed_cases": 5.0, "rate_above_peers": 10.0}


def score(rows: list[dict[str, Any]], confirmed: dict[str, int], limit: int = 50) -> list[dict[str, Any]]:
    """``rows``: ``{key, peer, decisions, alerts, amount}`` per entity → ranked entries with their parts."""
    peer_alerts: dict[Any, float] = defaultdict(float)
    peer_decisions: dict[Any, float] = defaultdict(float)
    for r in rows:
        peer_alerts[r["peer"]] += float(r["alerts"] or 0)
        peer_decisions[r["peer"]] += float(r["decisions"] or 0)
    out = []
    for r in rows:
        decisions = int(r["decisions"] or 0)
        alerts = int(r["alerts"] or 0)
        if not alerts and not confirmed.get(r["key"]):
            continue
        rate = alerts / decisions if decisions else 0.0
        pd = peer_decisions[r["peer"]]
        peer_rate = peer_alerts[r["peer"]] / pd if pd else 0.0
        ratio = rate / peer_rate if peer_rate else 0.0
        amount = round(float(r["amount"] or 0.0), 2)
        n_confirmed = confirmed.get(r["key"], 0)
        parts = {
            "alerts": round(WEIGHTS["alerts"] * alerts, 2),
            "amount_per_100_yuan": round(WEIGHTS["amount_per_100_yuan"] * amount / 100, 2),
            "confirmed_cases": round(WEIGHTS["confirmed_cases"] * n_confirmed, 2),
            "rate_above_peers": round(WEIGHTS["rate_above_peers"] * max(0.0, ratio - 1), 2),
        }
        out.append({
            "key": r["key"], "peer_group": r["peer"], "decisions": decisions, "alerts": alerts, "amount": amount,
            "confirmed_cases": n_confirmed, "alert_rate": round(rate, 4), "peer_alert_rate": round(peer_rate, 4),
            "rate_ratio": round(ratio, 2), "score": round(sum(parts.values()), 2), "score_parts": parts,
        })
    out.sort(key=lambda e: (-e["score"], str(e["key"])))
    return out[:limit]

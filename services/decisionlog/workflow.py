"""Pure: the review workflow (初审 · 申诉 · 复审 · 处理) — states, actions, who may take them.

::

    open ──confirm (reviewer, 初审)──▶ initial_review ──appeal (institution, 申诉)──▶ appealed
      │                                   │                                            │
      └─dismiss (reviewer)──▶ closed      └─accept (institution)──▶ closed             │ take (senior reviewer)
                                                                                       ▼
                                  closed ◀──uphold | overturn (senior reviewer, 复审)── re_review

``closed`` carries an outcome: ``dismissed`` (dismiss, overturn), ``upheld`` (accept, or uphold at the
confirmed amount) or ``partially_upheld`` (uphold with a smaller amount). The senior reviewer who
takes and decides the re-review must not be the reviewer of the initial review. Each state but
``closed`` has a deadline (办理时限): entering it sets ``due_at`` = now + the days configured for that
state (:data:`Deadlines`: one number for every step, or per state).
No I/O here: the store applies a :class:`Transition` inside one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeAlias

State = Literal["open", "initial_review", "appealed", "re_review", "closed"]
STATES: tuple[State, ...] = ("open", "initial_review", "appealed", "re_review", "closed")
Outcome = Literal["dismissed", "upheld", "partially_upheld"]
Role = Literal["institution", "reviewer", "senior_reviewer", "admin"]

# action → (from state, to state, roles that may take it, outcome when it closes the case)
ACTIONS: dict[str, tuple[State, State, frozenset[str], Outcome | None]] = {
    "confirm": ("open", "initial_review", frozenset({"reviewer", "senior_reviewer"}), None),
    "dismiss": ("open", "closed", frozenset({"reviewer", "senior_reviewer"}), "dismissed"),
    "appeal": ("initial_review", "appealed", frozenset({"institution"}), None),
    "accept": ("initial_review", "closed", frozenset({"institution"}), "upheld"),
    "take": ("appealed", "re_review", frozenset({"senior_reviewer"}), None),
    "uphold": ("re_review", "closed", frozenset({"senior_reviewer"}), "upheld"),
    "overturn": ("re_review", "closed", frozenset({"senior_reviewer"}), "dismissed"),
}
STATE_ZH = {"open": "待初审", "initial_review": "初审确认·待机构反馈", "appealed": "已申诉·待复审",
            "re_review": "复审中", "closed": "已办结"}
ACTION_ZH = {"confirm": "初审确认", "dismiss": "初审排除", "appeal": "申诉", "accept": "认可",
             "take": "受理复审", "uphold": "复审维持", "overturn": "复审撤销"}
# 办理时限: days per step — one number for every step, or per state (PRESETTLE_REVIEW_DEADLINE_DAYS).
Deadlines: TypeAlias = int | Mapping[str, int]
DEFAULT_DEADLINE_DAYS = 15


def days_for(deadlines: Deadlines, state: str) -> int:
    if isinstance(deadlines, int):
        return deadlines
    return int(deadlines.get(state, DEFAULT_DEADLINE_DAYS))


REASON_REQUIRED = frozenset({"dismiss", "appeal", "uphold", "overturn"})
REASON_MAX = 2000
ATTACHMENTS_MAX = 20


class WorkflowError(Exception):
    """A request the workflow refuses: ``status`` (403/409/422), the ``field`` at fault and a message."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


@dataclass(frozen=True)
class Case:
    """What the workflow needs to know of a case."""

    state: State
    amount: float  # amount at stake when opened (the alerts' sum)
    confirmed_amount: float | None
    initial_reviewer: str | None


@dataclass(frozen=True)
class Transition:
    action: str
    from_state: State
    to_state: State
    outcome: Outcome | None
    amount: float | None  # the amount confirmed (confirm), deducted (closing upheld) or None
    due_at: str | None  # the next step's deadline (None once closed)


def allowed(state: str) -> list[str]:
    return [a for a, (src, *_rest) in ACTIONS.items() if src == state]


def due(at: datetime, days: int) -> str:
    return (at + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def transition(case: Case, action: str, role: str, actor: str, reason: str | None, amount: float | None,
               now: datetime, deadline_days: Deadlines) -> Transition:
    """The transition ``action`` makes from ``case`` (or :class:`WorkflowError`)."""
    if action not in ACTIONS:
        raise WorkflowError(422, "action", f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    src, dst, roles, outcome = ACTIONS[action]
    if role not in roles:
        raise WorkflowError(403, "action", f"{action} is for {' or '.join(sorted(roles))}, not {role}")
    if case.state != src:
        raise WorkflowError(409, "action", f"the case is {case.state}: {action} is not allowed; allowed: "
                            f"{', '.join(allowed(case.state)) or 'none (closed)'}")
    if action in REASON_REQUIRED and not (reason or "").strip():
        raise WorkflowError(422, "reason", f"{action} needs a reason")
    if action in ("take", "uphold", "overturn") and case.initial_reviewer == actor:
        raise WorkflowError(403, "action", "the re-review (复审) must be made by another person than the "
                            "initial review (初审)")
    if amount is not None and (amount < 0 or amount > max(case.amount, case.confirmed_amount or 0.0)):
        raise WorkflowError(422, "amount", f"amount must be between 0 and the amount at stake ({case.amount:.2f})")
    value: float | None = None
    if action == "confirm":
        value = case.amount if amount is None else amount
    elif action == "accept":
        value = case.confirmed_amount if case.confirmed_amount is not None else case.amount
    elif action == "uphold":
        confirmed = case.confirmed_amount if case.confirmed_amount is not None else case.amount
        value = confirmed if amount is None else amount
        if value < confirmed:
            outcome = "partially_upheld"
    return Transition(action, src, dst, outcome, value, None if dst == "closed" else due(now, days_for(deadline_days, dst)))

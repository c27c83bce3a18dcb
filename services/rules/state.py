"""Per-patient state: its codec and its arithmetic (apply an event, evict by event time).

The state is a small dict serialised with orjson on every event. Days are
epoch-day ints, rows are lists (not dicts), institution and encounter ids are
kept as given / as a 32-bit hash. Sections are present only when non-empty:

====  =====================================================================
key   rows
====  =====================================================================
v     state format version (int; absent in a state that never saw an event:
      format 1). ``loads`` migrates any other readable format (``FORMATS``)
      to ``WRITE_FORMAT``; see ``migrate``
d     newest event day applied
L     supply ledger, one row per supply (ingredient × encounter):
      [ingredient, code, start_day, days_supply, qty, institution, event_id,
      enc_hash, yyyymm (of start_day), purchases_in_month ([enc_hash] and the
      same-month encounters folded into the row; rows written before supplies
      were kept per encounter also list the month's earlier purchases),
      folded (optional, L_PAST: spent supplies of the ingredient, F_* entries),
      parts (optional, L_PARTS: an older release's contributing events; [] now),
      stage (optional, L_RANK: 0 an order, 1 pre-settled, 2 settled; absent: 0),
      amount (optional, L_AMT: yuan, as the lines gave it)]
V     outpatient visits: [day, institution, enc_hash, event_id] (event_id: the
      event that recorded the visit; absent in rows written before issue 10)
A     inpatient stays: [admission_day, institution, enc_hash, event_id,
      main_dx, discharge_day|None]
E     open-stay accumulators: [enc_hash, [[code, enc_qty, last_day,
      last_day_qty(, days_mask)], ...], charged_days_mask, active_days_mask, amount,
      exam_amount, [first-line drug classes used], log, base]  (bit i =
      admission day + i). Optional trailing fields (absent in rows written
      before cancellations reversed them): ``log``, each event's lines
      [event_id, [code, start_day, span, qty, amount, flags(, class)], ...]
      (flags: 1 makes the day active, 2 an examination, 4 a tracked code;
      span: the days the masks take from it, ``treated_span``),
      and ``base``, an accumulator row of what the log no longer holds (a
      row written before the log, older lines folded in past
      ``E_LOG_LINES``); the accumulators are always base + log
      (``refold_stay``), so a cancellation removes lines and refolds.
      A counter's ``days_mask`` (optional trailing field, absent in rows
      written before issue 10's multi-day fix) has a bit for every stay day
      a line of the code covers, not only the last one (``qty_on``)
P     period counters: [code, day, qty, enc_hash, institution, event_id]
      (event_id absent in rows written before issue 10)
C     courses: [key, first_day, last_day, log, base]; optional trailing
      fields as in E: ``log`` [[event_id, enc_hash, start_day, end_day], ...]
      in arrival order, ``base`` [first_day, last_day] of what it no longer
      holds; first/last are always base + log replayed (``replay_course``)
S     insured-status periods: [status, from_day, to_day|None, updated_epoch_s,
      reason|None]
seen  RESERVED for the worker (services.rules.decision: idempotency); only
      ``migrate`` converts its rows between formats
====  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from math import floor
from operator import itemgetter
from typing import Any

import orjson

from services.contracts import status as status_model
from services.contracts.ids import decision_id_for_key
from services.rules.kb import tag_bit
from services.rules.timeutil import EPOCH_ORD, Memo, day_of_date, month_of_day

# Formats (the ``v`` key; see docs/architecture.md, "Patient state formats and rolling upgrades"):
#   1  seen rows [key, epoch_s, decision_id, alerts]
#   2  seen rows [key, epoch_s, alerts] (the decision id is derived from the key)
FORMATS = (1, 2)  # every format this code reads (migrate() converts between them)
WRITE_FORMAT = 1  # the format this release writes; 2 once no worker older than this release runs
FORMAT = WRITE_FORMAT  # (name kept for callers)
# Row layouts: each section's rows are JSON lists; these names are their field indexes
# (module constants: reading one costs a cached global lookup, no attribute access).
# L supply ledger, one row per supply (ingredient × encounter)
L_ING, L_CODE, L_START, L_DAYS, L_QTY, L_INST, L_EVENT, L_ENC, L_MONTH, L_BUYS, L_PAST, L_PARTS, L_RANK, L_AMT = range(14)
# L_PARTS (optional, after L_PAST — then [] when nothing is folded): written by the release before
# this one while more than one event of the encounter made the row (it kept the union of their
# supplies), each one's own contribution, so a withdrawal takes out exactly its event's: a bare event
# id when it is the row itself, else [event_id, start, days, qty, code]. This release replaces a row
# with each later sending of its encounter (the row is one event's), so it writes [] there (before
# L_RANK) and reads the parts of older rows only to withdraw from them (``_withdraw``).
# L_RANK (optional, after L_PARTS; absent: 0): the stage of the sending that made the row,
# ``SETTLES``: 0 an order (scenes 2, 4, 5), 1 a pre-settlement (7, 9), 2 a settlement (6, 8, 10). A
# sending of a lower stage arriving after (a prescription after its settlement) changes nothing.
# L_AMT (optional, after L_RANK; this release writes L_PAST..L_AMT on every row it makes or replaces):
# the supply's amount in yuan (its line's amount as sent; lines of one ingredient summed, to the fen),
# named in evidence.
# L_PAST (optional trailing field, [] when nothing is folded and a later field follows): the ingredient's spent supplies folded
# into this row (its newest), one compact entry each, so R25 still counts them and every alert still
# names them, sorted by date (``_fold`` sorts what it adds out of order; every other writer only takes
# entries out); F_* are an entry's field indexes
F_EVENT, F_INST, F_START, F_QTY, F_ENC, F_DAYS, F_CODE = range(7)  # F_CODE absent: the row's code
# A folded entry keeps no amount (L_AMT): it would need its code written too (a release before reads a 7th
# field as the code), ≈ 120 bytes per patient at the median, and the state's p50 would pass 1 KB.
PAST_MONTHS = 2  # folded purchases kept for their natural month and this many months after it
PAST_MAX = 24  # folded purchases kept per ingredient (the oldest go first)
# V outpatient visits (V_EVENT: optional trailing field, absent in rows written before issue 10; V_DX:
# optional trailing field, 1 once an event of the encounter carried a diagnosis, else absent)
V_DAY, V_INST, V_ENC, V_EVENT, V_DX = range(5)
# A inpatient stays (A_DIS None while open)
A_ADM, A_INST, A_ENC, A_EVENT, A_DX, A_DIS = range(6)
# E open-stay accumulators; E_COUNTERS holds K rows
E_ENC, E_COUNTERS, E_CHARGED, E_ACTIVE, E_AMOUNT, E_EXAM, E_CLASSES, E_LOG, E_BASE = range(9)
K_CODE, K_QTY, K_LAST_DAY, K_LAST_QTY, K_DAYS = range(5)  # K_DAYS: optional trailing field (day mask)
# E_LOG line items; F_* their flags
I_CODE, I_START, I_SPAN, I_QTY, I_AMT, I_FLAGS, I_CLASS = range(7)
F_ACTIVE, F_EXAM, F_TRACKED = 1, 2, 4
E_LOG_LINES = 24  # lines kept per stay in E_LOG (older events fold into E_BASE: no longer reversible)
# P period counters (P_EVENT: optional trailing field, absent in rows written before issue 10; P_AMT:
# optional trailing field, the line's amount in yuan, absent in rows written before it was kept)
P_CODE, P_DAY, P_QTY, P_ENC, P_INST, P_EVENT, P_AMT = range(7)
# C courses (C_LOG, C_BASE: optional trailing fields); CL_* the fields of a C_LOG entry
C_KEY, C_FIRST, C_LAST, C_LOG, C_BASE = range(5)
CL_EVENT, CL_ENC, CL_START, CL_END, CL_INST = range(5)  # CL_INST: optional trailing field
C_LOG_ENTRIES = 4  # course entries kept per row (older ones fold into C_BASE)
# S insured-status periods (S_TO None: open)
S_STATUS, S_FROM, S_TO, S_UPDATED, S_REASON = range(5)

BY_START = itemgetter(L_START)  # sort key of ledger rows: their service date
BY_F_START = itemgetter(F_START)  # sort key of folded supplies (L_PAST)
ENC_OF_PAST = itemgetter(F_ENC)
MASK_DAYS = 62  # stay days tracked in the E masks
# Defaults of the state parameters of the idle_stay (R27) and low_acuity (R30) families, used
# only when no rule of the family is loaded (Windows.passive / Windows.exam come from the rules).
PASSIVE = frozenset({"bed", "nursing", "consult", "registration"})  # 挂床: charges that are not treatment
EXAM = frozenset({"lab", "imaging"})
SUPPLY_SCENES = frozenset({2, 6, 7, 10})
SETTLES = {6: 2, 8: 2, 10: 2, 7: 1, 9: 1}  # scene → stage of its ledger rows (L_RANK); other scenes 0
STATUS_MAX = 8
DRUG_BIT = tag_bit("drug")
PERIOD = tag_bit("period")  # context feature bits (see kb.TAG_BITS)
COURSE = tag_bit("course")


class StateFormatError(ValueError):
    """A patient state in a format this release cannot read: a newer release wrote it.
    Finish the rolling upgrade (docs/architecture.md) before older workers take partitions back."""


def dumps(state: dict[str, Any]) -> bytes:
    return orjson.dumps(state)


def loads(data: bytes | None) -> dict[str, Any]:
    """Decode a state, in :data:`WRITE_FORMAT` (a state in another readable format is migrated)."""
    if not data:
        return {}
    state = orjson.loads(data)
    if not isinstance(state, dict):
        raise ValueError("patient state is not a JSON object")
    if state.get("v", 1) != WRITE_FORMAT:
        migrate(state)
    return state


def _seen_1_to_2(state: dict[str, Any]) -> None:
    rows = state.get("seen")
    if rows:
        state["seen"] = [[r[0], r[1], r[3]] for r in rows]


def _seen_2_to_1(state: dict[str, Any]) -> None:
    rows = state.get("seen")
    if rows:
        state["seen"] = [[r[0], r[1], decision_id_for_key(r[0]), r[2]] for r in rows]


# Per format: how to reach the next one up (UP[n]: n → n+1) and down (DOWN[n]: n → n-1).
UP = {1: _seen_1_to_2}
DOWN = {2: _seen_2_to_1}


def migrate(state: dict[str, Any], to: int | None = None) -> dict[str, Any]:
    """Convert ``state`` in place from its format (``v``; absent: 1) to ``to`` (default: :data:`WRITE_FORMAT`).

    Every format in :data:`FORMATS` converts to every other, up and down, one step at a time,
    so a release reads the format before it and the one after it (the rolling-upgrade rule)."""
    target = WRITE_FORMAT if to is None else to
    version = state.get("v", 1)
    if version not in FORMATS or target not in FORMATS:
        raise StateFormatError(f"patient state format {version} cannot become {target}: this release reads "
                               f"formats {FORMATS}")
    while version < target:
        UP[version](state)
        version += 1
    while version > target:
        DOWN[version](state)
        version -= 1
    if "v" in state or target != 1:
        state["v"] = target
    return state


@dataclass(frozen=True)
class Windows:
    """How long (days, by event time) each section is kept: the widest active rule window."""

    ledger: int = 90
    visits: int = 30
    stays: int = 365
    discharges: int = 31
    open_stay: int = 365
    period: int = 365
    course_gap: int = 30
    tracked: frozenset[str] = frozenset()  # service codes whose per-stay counts are kept
    first_line: frozenset[str] = frozenset()  # drug classes some second-line drug waits for
    period_by_code: dict[str, int] = field(default_factory=dict)  # code → its period (days)
    passive: frozenset[str] = PASSIVE  # service categories that do not make a stay day active (idle_stay)
    exam: frozenset[str] = EXAM  # service categories summed as examinations (low_acuity)


def supply_days(line: Any) -> int:
    """Days of supply: as ordered, or estimated from quantity / usual daily quantity."""
    if line.ds is not None:
        return line.ds
    row = line.row
    if row is not None and row.get("daily_qty"):
        return max(1, int(-(-line.qty // row["daily_qty"])))
    return 0


def ingredient_of(line: Any) -> str:
    row = line.row
    return row["ingredient"] if row is not None else "?" + line.code


def evict(state: dict[str, Any], day: int, win: Windows) -> None:
    """Drop rows no active rule window can reach any more (by event time).

    Each section is rebuilt only when one of its rows goes (most days none does). Spent supplies
    are folded into their ingredient's newest row when a supply of it is recorded (``_fold``)."""
    rows = state.get("L")
    if rows:
        w = win.ledger - 1  # kept while its last day (start + days - 1) is less than the window before ``day``
        for r in rows:
            if not day - r[L_START] - (r[L_DAYS] or 1) < w:
                _put(state, "L", _live_ledger(rows, day, w))
                break
    rows = state.get("V")
    if rows and day - rows[0][V_DAY] >= win.visits:
        # in place: the expired visits in front (rows come in event order), then any later one (a late event)
        visits, k, n = win.visits, 1, len(rows)
        while k < n and day - rows[k][V_DAY] >= visits:
            k += 1
        del rows[:k]
        for r in rows:
            if day - r[V_DAY] >= visits:
                rows[:] = _live_visits(rows, day, visits)
                break
        if not rows:
            del state["V"]
    if "A" in state:  # (absent more often than not: a test, not a method call)
        rows = state["A"]
        stays, open_stay, discharges = win.stays, win.open_stay, win.discharges
        for r in rows:
            if not (day - r[A_ADM] < stays or (r[A_DIS] is None and day - r[A_ADM] < open_stay)
                    or (r[A_DIS] is not None and day - r[A_DIS] < discharges)):
                _put(state, "A", _live_stays(rows, day, win))
                break
        else:
            if not rows:
                del state["A"]
    if "E" in state:
        rows = state["E"]
        stays = state.get("A", ())
        for r in rows:
            for s in stays:  # an open (or just discharged) stay of this encounter keeps it
                if s[A_ENC] == r[E_ENC] and (s[A_DIS] is None or s[A_DIS] >= day - 1):
                    break
            else:
                _put(state, "E", _live_open(rows, stays, day))
                break
        else:
            if not rows:
                del state["E"]
    if "P" in state:
        rows = state["P"]
        periods, period = win.period_by_code, win.period
        for r in rows:
            if not day - r[P_DAY] < periods.get(r[P_CODE], period):
                _put(state, "P", _live_periods(rows, day, periods, period))
                break
        else:
            if not rows:
                del state["P"]
    if "C" in state:
        rows = state["C"]
        gap = win.course_gap
        for r in rows:
            if not day - r[C_LAST] <= gap:
                _put(state, "C", _live_courses(rows, day, gap))
                break
        else:
            if not rows:
                del state["C"]
    if "S" in state:
        rows = state["S"]
        for r in rows:
            if not (r[S_TO] is None or r[S_TO] >= day - 1):
                _put(state, "S", _live_statuses(rows, day))
                break
        else:
            if not rows:
                del state["S"]


# The rows ``evict`` keeps of a section once one has gone. (Module functions, not comprehensions in
# ``evict``: a comprehension there would make every name it reads a cell, built on each call.)
def _live_ledger(rows: list[Any], day: int, w: int) -> list[Any]:
    return [r for r in rows if day - r[L_START] - (r[L_DAYS] or 1) < w]


def _live_visits(rows: list[Any], day: int, visits: int) -> list[Any]:
    return [r for r in rows if day - r[V_DAY] < visits]


def _live_stays(rows: list[Any], day: int, win: Windows) -> list[Any]:
    stays, open_stay, discharges = win.stays, win.open_stay, win.discharges
    return [
        r for r in rows
        if day - r[A_ADM] < stays
        or (r[A_DIS] is None and day - r[A_ADM] < open_stay)
        or (r[A_DIS] is not None and day - r[A_DIS] < discharges)
    ]


def _live_open(rows: list[Any], stays: Any, day: int) -> list[Any]:
    open_ = {s[A_ENC] for s in stays if s[A_DIS] is None or s[A_DIS] >= day - 1}
    return [r for r in rows if r[E_ENC] in open_]


def _live_periods(rows: list[Any], day: int, periods: dict[str, int], period: int) -> list[Any]:
    live = []  # (a loop: a comprehension would make day, periods and period cells, built on each call)
    for r in rows:
        if day - r[P_DAY] < periods.get(r[P_CODE], period):
            live.append(r)
    return live


def _live_courses(rows: list[Any], day: int, gap: int) -> list[Any]:
    return [r for r in rows if day - r[C_LAST] <= gap]


def _live_statuses(rows: list[Any], day: int) -> list[Any]:
    return [r for r in rows if r[S_TO] is None or r[S_TO] >= day - 1]


def _fold(ledger: list[Any], rows: list[Any], day: int) -> None:
    """Fold one ingredient's spent supplies (``rows``: its ledger rows in ledger order, at least two)
    into its newest row's ``L_PAST``: supplies used up before a later supply began from nothing (the
    stock walk of ``on_hand`` reset after them), or every one but the newest when all are used up on
    ``day``. What is still held is unchanged; each folded supply keeps its event id, institution,
    date, quantity, encounter, code and days (R25 counts and names it, R12 sees it, a cancellation
    removes it). Entries (sorted by date) of natural months more than ``PAST_MONTHS`` before
    ``day``'s go, and beyond ``PAST_MAX`` the oldest. ``L_BUYS`` of the newest row also lists the
    folded purchases of its own month (a release that does not read ``L_PAST`` still counts them)."""
    if len(rows) == 2:  # the common case: the newest row and the one before it
        a, host = rows
        if host[L_START] < a[L_START]:
            a, host = host, a
        stock = a[L_DAYS] - (host[L_START] - a[L_START])
        if stock > 0 and stock + host[L_DAYS] - (day - host[L_START]) > 0:
            return  # still held
        group = [a]
    else:
        ordered = rows  # walked as they are while dated in order (sorting would keep them so), else sorted
        while True:
            stock = 0
            last = ordered[0][L_START]
            chain_from = 0
            for i, r in enumerate(ordered):
                start = r[L_START]
                if start < last:
                    break
                stock -= start - last
                if stock <= 0:
                    stock = 0
                    chain_from = i
                stock += r[L_DAYS]
                last = start
            else:
                break
            ordered = sorted(rows, key=BY_START)
        if stock - (day - last) <= 0:
            chain_from = len(ordered) - 1  # all used up: only the newest is kept
        if not chain_from:
            return
        host = ordered[-1]
        group = ordered[:chain_from]
    past = host[L_PAST] if len(host) > L_PAST else []
    buys = host[L_BUYS]
    month = host[L_MONTH]
    unsorted = False  # an entry added before an earlier-dated one (each L_PAST is kept sorted by date)
    for r in group:
        code = r[L_CODE]
        if len(r) > L_PAST:
            folded = r[L_PAST]
            if folded:
                if code != host[L_CODE]:
                    _pin_codes(r)
                if past and folded[0][F_START] < past[-1][F_START]:
                    unsorted = True
                past.extend(folded)
        start = r[L_START]
        if past and start < past[-1][F_START]:
            unsorted = True
        past.append([r[L_EVENT], r[L_INST], start, r[L_QTY], r[L_ENC], r[L_DAYS]] if code == host[L_CODE]
                    else [r[L_EVENT], r[L_INST], start, r[L_QTY], r[L_ENC], r[L_DAYS], code])
        if r[L_MONTH] == month:
            for b in r[L_BUYS]:
                if b not in buys:
                    buys.append(b)
        ledger.remove(r)
    if len(past) > 1:
        if unsorted:  # (a stable sort of a sorted list leaves it as it is)
            past.sort(key=BY_F_START)
        first = past_from(day)
        if past[0][F_START] < first:  # the entries dated before it go (most often one: a walk, not a bisect)
            k = 1
            while k < len(past) and past[k][F_START] < first:
                k += 1
            del past[:k]
        if len(past) > PAST_MAX:
            del past[:-PAST_MAX]
    if not past or len(host) <= L_PAST:  # (else ``past`` is the host's own list, changed in place)
        _set_past(host, past)


def _past_from(day: int) -> int:
    d = date.fromordinal(day + EPOCH_ORD)
    y, m = divmod(d.year * 12 + d.month - 1 - PAST_MONTHS, 12)
    return date(y, m + 1, 1).toordinal() - EPOCH_ORD


# The first day of the natural month PAST_MONTHS before ``day``'s (folded supplies dated before it go):
# 2026-01-17 → 2025-11-01. A Memo lookup: a remembered day is one C call, no Python frame.
past_from: Callable[[int], int] = Memo(_past_from, 4096).__getitem__


def _pin_codes(row: list[Any]) -> None:
    """Give each supply folded into ``row`` that has no code of its own the row's (before it changes)."""
    if len(row) > L_PAST:
        code = row[L_CODE]
        for e in row[L_PAST]:
            if len(e) <= F_CODE:
                e.append(code)


def _set_past(row: list[Any], past: list[Any]) -> None:
    if past:
        if len(row) > L_PAST:
            row[L_PAST] = past
        else:
            row.append(past)
    elif len(row) > L_PARTS:
        row[L_PAST] = []  # L_PARTS follows
    elif len(row) > L_PAST:
        del row[L_PAST:]


def _unfold(ledger: list[Any], rows: list[Any]) -> list[Any]:
    """Make each supply folded into ``rows`` (one ingredient's) a ledger row again (a supply placed
    before them arrived late, or an encounter of theirs is sent again); returns all the rows."""
    out = list(rows)
    for r in rows:
        if len(r) <= L_PAST:
            continue
        back = set()
        for e in r[L_PAST]:
            enc = e[F_ENC]
            back.add(enc)
            row = [r[L_ING], e[F_CODE] if len(e) > F_CODE else r[L_CODE], e[F_START], e[F_DAYS], e[F_QTY],
                   e[F_INST], e[F_EVENT], enc,
                   month_of_day(e[F_START]), [enc]]
            ledger.append(row)
            out.append(row)
        r[L_BUYS] = [b for b in r[L_BUYS] if b == r[L_ENC] or b not in back]
        _set_past(r, [])
    return out


def past_rows(row: list[Any]) -> list[list[Any]]:
    """The supplies folded into a ledger row, as ledger rows (for evidence and counting)."""
    if len(row) <= L_PAST:
        return []
    ing, code = row[L_ING], row[L_CODE]
    return [[ing, e[F_CODE] if len(e) > F_CODE else code, e[F_START], e[F_DAYS], e[F_QTY], e[F_INST], e[F_EVENT], e[F_ENC],
             month_of_day(e[F_START]), [e[F_ENC]]] for e in row[L_PAST]]


def _put(state: dict[str, Any], key: str, rows: list[Any]) -> None:
    if rows:
        state[key] = rows
    else:
        state.pop(key, None)


def apply_event(state: dict[str, Any], cx: Any, win: Windows) -> dict[str, Any]:
    if cx.cancel is not None:
        return apply_cancellation(state, cx, win)
    day = cx.day
    newest = state.get("d")
    if newest is None or day > newest:
        state["d"] = day
        state["v"] = WRITE_FORMAT
        if newest is not None:
            evict(state, day, win)
    enc_type = cx.enc_type
    ench = cx.ench

    if enc_type == "outpatient":
        visits = state.get("V")
        if visits is None:
            state["V"] = [[day, cx.inst, ench, cx.event_id, 1] if cx.dx else [day, cx.inst, ench, cx.event_id]]
        else:
            for v in visits:
                if v[V_ENC] == ench:
                    if cx.dx and len(v) <= V_DX:  # the encounter had a diagnosis (R37)
                        if len(v) == V_ENC + 1:
                            v.append(None)
                        v.append(1)
                    break
            else:
                visits.append([day, cx.inst, ench, cx.event_id, 1] if cx.dx else [day, cx.inst, ench, cx.event_id])
    elif enc_type == "inpatient":
        _apply_stay(state, cx, win)

    if not cx.items:
        return state
    if cx.kmask & DRUG_BIT:
        if enc_type == "inpatient":
            supplies = ledger_lines(cx)
            if supplies:
                _apply_supply(state, cx, supplies, SETTLES.get(cx.scene, 0))
            elif cx.scene in SETTLES:
                _drop_unsettled(state, ench, set(), SETTLES[cx.scene])
        elif cx.scene in SUPPLY_SCENES:
            _apply_supply(state, cx, None, SETTLES.get(cx.scene, 0))  # every drug line (ledger_lines)
    elif "L" in state and cx.scene in SETTLES and (enc_type == "inpatient" or cx.scene in SUPPLY_SCENES):
        _drop_unsettled(state, ench, set(), SETTLES[cx.scene])  # a settlement without drugs: the orders' supplies go
    fmask = cx.fmask
    if fmask & PERIOD:
        _apply_period(state, cx)
    if fmask & COURSE:
        _apply_course(state, cx, win)
    return state


LEDGER_ROWS_PER_INGREDIENT = 8  # supplies kept per ingredient (the oldest go first)


def ledger_lines(cx: Any) -> list[Any]:
    """The drug lines of an event that are supplies the patient holds (the supply ledger's input).

    Outpatient and pharmacy events at the supply scenes (2, 6, 7, 10): every drug line. Inpatient
    events (any scene): discharge medication (``take_home``, 出院带药), and a drug dispensed during
    the stay whose days of supply run past the discharge day (what is left goes home with the
    patient). Doses used on the ward within the stay are not a supply the patient holds."""
    if cx.enc_type == "inpatient":
        dis = cx.dis_day
        out = []
        for ln in cx.items:
            if ln.kind != "drug":
                continue
            if ln.take_home:
                out.append(ln)
            elif dis is not None:
                ds = ln.ds if ln.ds is not None else supply_days(ln)
                if ln.start + ds - 1 > dis:
                    out.append(ln)
        return out
    if cx.scene in SUPPLY_SCENES:
        return [ln for ln in cx.items if ln.kind == "drug"]
    return []


def request_supplies(lines: list[Any]) -> list[list[Any]]:
    """The request's supplies, one per ingredient: lines of one ingredient (分解处方: one drug split
    over several lines) add up — quantity and days of supply summed, from the earliest service
    date. Each: [ingredient, code, start, days, qty, lines]. Lines other than drugs are skipped."""
    out: dict[str, list[Any]] = {}
    for line in lines:
        if line.kind != "drug":
            continue
        kb_row = line.row
        ing = kb_row["ingredient"] if kb_row is not None else "?" + line.code  # ingredient_of(line)
        ds = line.ds
        if ds is None:
            ds = supply_days(line)
        got = out.get(ing)
        if got is None:
            out[ing] = [ing, line.code, line.start, ds, line.qty, [line]]
        else:
            if line.start < got[2]:
                got[2] = line.start
            got[3] += ds
            got[4] += line.qty
            got[5].append(line)
    return list(out.values())


def drug_supplies(cx: Any) -> list[list[Any]]:
    """``request_supplies`` of all the event's drug lines, computed once per event (the supply
    families and the ledger update share it), each with a 7th field: the PRIOR ledger's rows of its
    ingredient (in ledger order; one scan of the ledger for all of them)."""
    sup = cx._supplies
    if sup is not None:
        return sup
    by_ing: dict[str, list[Any]] = {}
    sup = cx._supplies = []
    for line in cx.items:  # request_supplies(cx.items), inline
        if line.kind != "drug":
            continue
        kb_row = line.row
        ing = kb_row["ingredient"] if kb_row is not None else "?" + line.code  # ingredient_of(line)
        ds = line.ds
        if ds is None:
            ds = supply_days(line)
        got = by_ing.get(ing)
        if got is None:
            got = by_ing[ing] = [ing, line.code, line.start, ds, line.qty, [line], []]
            sup.append(got)
        else:
            if line.start < got[2]:
                got[2] = line.start
            got[3] += ds
            got[4] += line.qty
            got[5].append(line)
    ledger = cx._ledger = cx.state.get("L")
    if ledger and sup:
        for r in ledger:
            got = by_ing.get(r[L_ING])
            if got is not None:
                got[6].append(r)
    return sup


def _apply_supply(state: dict[str, Any], cx: Any, lines: list[Any] | None, rank: int = 0) -> None:
    """The supply ledger: one row per (ingredient, encounter) supply, so every supply still held
    counts (R19 adds up what remains of each). A later sending of the same encounter (the changed
    order after a warning, scene 2 then 7 then 6, a settlement after the orders, NHSA history
    re-sent) REPLACES the encounter's row of each ingredient it lists — what was settled is what the
    patient holds — so a re-send never counts twice and an order cut down before settlement holds
    only what was settled; lines of one ingredient within one request add up (``drug_supplies``).
    ``rank`` is the sending's stage (``SETTLES``, kept in ``L_RANK``): once a row of the encounter was
    made at a higher stage (a prescription arriving after its settlement) the sending changes
    nothing; a (pre-)settlement also takes out the encounter's rows of ingredients it no longer lists
    (``_drop_unsettled``). Rows are placed by their own service date, whatever order the events
    arrive in. ``L_MONTH`` is the month of the row's service date (R25 counts the encounters with a
    row in a month); ``L_BUYS`` holds the row's own encounter (rows written before supplies were kept
    per encounter list there the month's earlier purchases too, still counted). Spent supplies are
    folded into the ingredient's newest row (``_fold``); a supply dated before the newest held, or an
    encounter of a folded one sent again, makes them rows again first (``_unfold``)."""
    ledger = state.get("L")
    if lines is None:
        supplies = cx._supplies  # drug_supplies(cx), most often already computed by a rule
        if supplies is None:
            supplies = drug_supplies(cx)
        fresh = cx._ledger is ledger  # each supply's prior rows (drug_supplies) are this ledger's
    else:
        supplies, fresh = request_supplies(lines), False
    ench = cx.ench
    mine = None  # the encounter's rows before this sending (None: it has none)
    if ledger is None:
        ledger = state["L"] = []
    else:
        for r in ledger:  # (a loop: a comprehension would make ``ench`` a cell of this function)
            if r[L_ENC] == ench:
                if mine is None:
                    mine = [r]
                else:
                    mine.append(r)
        if mine is not None and rank < 2:
            for r in mine:
                if len(r) > L_RANK and r[L_RANK] > rank:
                    return  # the encounter was (pre-)settled: an earlier stage arriving late changes nothing
    inst, event_id = cx.inst, cx.event_id
    replaced = 0  # rows of ``mine`` this sending replaced
    for sup in supplies:
        if fresh:
            ing, code, start, ds, qty, lines_of, same = sup
        else:
            ing, code, start, ds, qty, lines_of, *_ = sup
            same = []
            for r in ledger:
                if r[L_ING] == ing:
                    same.append(r)
        amt = lines_of[0].amt if len(lines_of) == 1 else amount_sum(lines_of)
        old = None
        if mine is not None:
            for r in same:
                if r[L_ENC] == ench:
                    old = r
                    replaced += 1
                    break
        if same:
            top = same[0][L_START]  # the newest supply held
            if len(same) > 1:
                for r in same:
                    if r[L_START] > top:
                        top = r[L_START]
            # Not after every supply held (or the encounter's, not a row, might be folded): rows again what
            # is folded, if this could change the walk or hold the encounter's supply.
            if start < top or (start == top and old is None):
                for r in same:
                    if len(r) > L_PAST and r[L_PAST] and (start < top or ench in map(ENC_OF_PAST, r[L_PAST])):
                        same = _unfold(ledger, same)
                        if old is None:
                            for u in same:
                                if u[L_ENC] == ench:
                                    old = u
                                    break
                        break
        if old is not None:  # the encounter sent again: this sending replaces its supply
            if old[L_START] == start and old[L_DAYS] == ds:
                same = ()  # the walk is unchanged: nothing to fold
            else:
                old[L_START], old[L_DAYS], old[L_MONTH] = start, ds, month_of_day(start)
            if code != old[L_CODE]:
                _pin_codes(old)
                old[L_CODE] = code
            old[L_QTY], old[L_EVENT] = qty, event_id
            if len(old) > L_AMT:
                if old[L_PARTS]:
                    old[L_PARTS] = []
                old[L_RANK], old[L_AMT] = rank, amt
            else:
                _set_tail(old, rank, amt)
        else:
            if len(same) >= LEDGER_ROWS_PER_INGREDIENT:
                oldest = min(same, key=BY_START)
                if oldest[L_START] > start:
                    continue  # older than every supply kept: it could not change a judgement
                ledger.remove(oldest)
                same = list(same)
                for i, r in enumerate(same):
                    if r is oldest:
                        del same[i]
                        break
            row = [ing, code, start, ds, qty, inst, event_id, ench, month_of_day(start), [ench], [], [], rank, amt]
            ledger.append(row)
            same = [*same, row]
        if len(same) > 1:
            _fold(ledger, same, cx.day)
    if rank and mine is not None and replaced < len(mine):  # a row of the encounter it does not list
        _drop_unsettled(state, ench, {sup[0] for sup in supplies}, rank, mine)


def amount_sum(lines: list[Any]) -> float:
    """The amount of a supply's lines (yuan, to the fen)."""
    return to_fen(sum(ln.amt for ln in lines))


def to_fen(x: float) -> float:
    """``round(x, 2)``, the very same float, mostly without its decimal-string round trip (≈ 1,000
    instructions less): n, the integer nearest x·100, is the right number of fen unless x·100 lies
    within 1e-4 of a half (or is huge, or NaN, or n is 0: the sign of a zero), and n / 100 (one
    correctly rounded division of two exact numbers) is then the float ``round`` gives."""
    p = x * 100.0
    if -1e9 < p < 1e9:
        n = floor(p + 0.5)
        if n and -0.4999 < p - n < 0.4999:
            return n / 100
    return round(x, 2)


def _set_tail(row: list[Any], rank: int, amt: float) -> None:
    """Stamp a replaced row with its sending's stage and amount (``L_RANK``, ``L_AMT``; ``L_PAST`` and
    ``L_PARTS`` before them as placeholders); the parts an older release kept go."""
    if len(row) > L_AMT:
        row[L_PARTS], row[L_RANK], row[L_AMT] = [], rank, amt
        return
    if len(row) == L_PAST:
        row.append([])
    del row[L_PARTS:]
    row += [[], rank, amt]


def amount_of(row: list[Any]) -> float | None:
    """A ledger row's amount in yuan (None: a row written before amounts were kept)."""
    return row[L_AMT] if len(row) > L_AMT else None


def _drop_unsettled(state: dict[str, Any], ench: int, listed: set[str], rank: int,
                    rows: list[Any] | None = None) -> None:
    """A (pre-)settlement lists everything settled: the encounter's rows (``rows``: those it had before
    this sending, default: all in the ledger) of ingredients it does not list (a drug the doctor removed)
    go, unless a settlement made them (an encounter settled in parts, 分次结算, keeps each part). What was
    folded into a row that goes is made rows again first."""
    ledger = state.get("L")
    if not ledger:
        return
    # (loops, and the rows' removal in its own function: a comprehension here would make the names it
    # reads cells of this function, built on every call)
    if rows is None:
        rows = []
        for r in ledger:
            if r[L_ENC] == ench:
                rows.append(r)
    top = min(rank, 1)
    gone = []
    for r in rows:
        if r[L_ING] not in listed and (r[L_RANK] if len(r) > L_RANK else 0) <= top:
            gone.append(r)
    if gone:
        _drop_rows(state, ledger, gone)


def _drop_rows(state: dict[str, Any], ledger: list[Any], gone: list[Any]) -> None:
    for r in gone:
        if any(x is r for x in ledger):  # (not folded meanwhile)
            if len(r) > L_PAST and r[L_PAST]:
                _unfold(ledger, [r])
            ledger[:] = [x for x in ledger if x is not r]
    _put(state, "L", ledger)


def _withdraw(row: list[Any], event_id: str) -> bool:
    """Take one event's contribution out of a row (a withdrawal: 返回修改); False when nothing is left.
    A row of this release is one event's (a later sending replaced it); rows an older release wrote
    may keep each contributing event's part (``L_PARTS``)."""
    if len(row) <= L_PARTS or not row[L_PARTS]:
        return row[L_EVENT] != event_id
    parts = [p for p in row[L_PARTS] if (p if isinstance(p, str) else p[0]) != event_id]
    if len(parts) == len(row[L_PARTS]):
        return True
    if not parts:
        return False
    bare = [p for p in parts if isinstance(p, str)]
    if bare:  # a remaining event is the row itself: the row stands, named by it
        if row[L_EVENT] == event_id:
            row[L_EVENT] = bare[0]
    else:  # the row again from what remains, in the order the events came
        _pin_codes(row)
        first = parts[0]
        row[L_START], row[L_DAYS], row[L_QTY], row[L_CODE], row[L_EVENT] = first[1], first[2], first[3], first[4], first[0]
        for p in parts[1:]:
            end = max(row[L_START] + row[L_DAYS], p[1] + p[2])
            if p[1] < row[L_START]:
                row[L_START] = p[1]
            if end - row[L_START] > row[L_DAYS] or p[3] > row[L_QTY]:
                row[L_CODE], row[L_EVENT] = p[4], p[0]
            row[L_DAYS] = end - row[L_START]
            row[L_QTY] = max(row[L_QTY], p[3])
        row[L_MONTH] = month_of_day(row[L_START])
    if len(parts) == 1:
        del row[L_PARTS:]
        if not row[L_PAST]:
            del row[L_PAST:]
    else:
        row[L_PARTS] = parts
    return True


def on_hand(prior: list[Any], day: int, ench: int) -> tuple[float, list[list[Any]]]:
    """Days of an ingredient the patient still holds on ``day`` from supplies of other encounters
    started on or before it, and the supplies that make it up (oldest first). ``prior``: the ledger's
    rows of the ingredient (``drug_supplies``).

    The supplies are taken one after the other (a refill is used once the earlier supply is
    finished): walking them by start date, the stock is what was left when the next one came plus
    its days. So early refills add up (囤药) instead of each being compared with the last alone."""
    if len(prior) == 1:  # the common case: one earlier supply
        r = prior[0]
        if r[L_ENC] == ench or r[L_START] > day:
            return 0, []
        stock = r[L_DAYS] - (day - r[L_START])
        return (stock if stock > 0 else 0), prior
    rows = []  # (a loop: a comprehension would make ``day`` and ``ench`` cells, built on every call)
    for r in prior:
        if r[L_ENC] != ench and r[L_START] <= day:
            rows.append(r)
    if not rows:
        return 0, []
    rows.sort(key=BY_START)
    stock = 0
    last = rows[0][L_START]
    chain: list[list[Any]] = []
    for r in rows:
        stock -= r[L_START] - last
        if stock <= 0:
            stock = 0
            chain = []
        stock += r[L_DAYS]
        last = r[L_START]
        chain.append(r)
    stock -= day - last
    return (stock, chain) if stock > 0 else (0, chain)


def apply_cancellation(state: dict[str, Any], cx: Any, win: Windows | None = None) -> dict[str, Any]:
    """Take a cancelled (撤销) or refunded (退费) order back out of the state, so it no longer counts.

    What goes: the encounter's supplies (ledger rows of ``cx.ench``, or recorded by the cancelled
    event ``cx.cancel``) and its period counters; the lines the cancelled event added to the
    encounter's open-stay accumulators (``E``: counters per code, day masks, amounts, first-line
    classes) and its course entries (``C``) — without ``cancels``, those of every event of the
    encounter; with items, only those of the items' ingredients (drugs) and codes; without items,
    also the encounter's outpatient visit, and the stay when the cancelled event is the one that
    admitted it. Time does not move (``d`` unchanged): a cancellation is not care. ``E`` and ``C``
    rows written before they kept a log of their events are not reversed. A withdrawal
    (``withdrawal: true``, accepted feedback 返回修改) takes out only the supplies the withdrawn
    event ``cx.cancel`` made (``L_PARTS``): a changed order of the same encounter that came before
    it stays."""
    ench = cx.ench
    cancels = cx.cancel
    ings = {ingredient_of(ln) for ln in cx.items if ln.kind == "drug"} if cx.items else None
    codes = {ln.code for ln in cx.items} if cx.items else None
    rows = state.get("L")
    if rows and cancels and cx.ev.get("withdrawal") is True:
        # 返回修改 (services.rules.alert_index.withdrawal_event): exactly the withdrawn event's supplies go,
        # not those of the encounter's changed order, whichever came first
        _put(state, "L", [r for r in rows if not (r[L_ENC] == ench and (ings is None or r[L_ING] in ings))
                          or _withdraw(r, cancels)])
        for r in state.get("L", ()):
            if len(r) > L_PAST and r[L_PAST] and (ings is None or r[L_ING] in ings):
                keep = [e for e in r[L_PAST] if not (e[F_ENC] == ench and e[F_EVENT] == cancels)]
                if len(keep) != len(r[L_PAST]):
                    _set_past(r, keep)
        rows = None
    if rows:
        for r in rows:  # folded supplies (L_PAST) of the encounter go too
            if len(r) > L_PAST and (ings is None or r[L_ING] in ings):
                past = r[L_PAST]
                keep = [e for e in past if not (e[F_ENC] == ench or (cancels and e[F_EVENT] == cancels))]
                if len(keep) != len(past):
                    lost = {e[F_ENC] for e in past} - {e[F_ENC] for e in keep}
                    r[L_BUYS] = [b for b in r[L_BUYS] if b == r[L_ENC] or b not in lost]
                    _set_past(r, keep)
        _put(state, "L", [r for r in rows if not ((r[L_ENC] == ench or (cancels and r[L_EVENT] == cancels))
                                                  and (ings is None or r[L_ING] in ings))])
    rows = state.get("P")
    if rows:
        _put(state, "P", [r for r in rows if not (r[P_ENC] == ench and (codes is None or r[P_CODE] in codes))])
    if "E" in state:
        _cancel_stay_lines(state, cx, codes)
    if "C" in state:
        keys = ({ln.row.get("ingredient", ln.code) if ln.row is not None and ln.kind in ("drug", "herb") else ln.code
                 for ln in cx.items} if cx.items else None)  # course_key, also for lines without a catalogue row
        _cancel_course_entries(state, cx, keys, (win or Windows()).course_gap)
    if codes is None:
        rows = state.get("V")
        if rows:
            _put(state, "V", [r for r in rows if r[V_ENC] != ench])
        rows = state.get("A")
        if rows and cancels:
            gone = [r for r in rows if r[A_ENC] == ench and r[A_EVENT] == cancels]
            if gone:
                _put(state, "A", [r for r in rows if r not in gone])
                work = state.get("E")
                if work:
                    _put(state, "E", [w for w in work if w[E_ENC] != ench])
    return state


def _apply_stay(state: dict[str, Any], cx: Any, win: Windows) -> None:
    ench = cx.ench
    stays = state.get("A")
    if stays is None:
        stays = state["A"] = []
    main = cx.main_dx.code if cx.main_dx is not None else None
    for stay in stays:
        if stay[A_ENC] == ench:
            break
    else:
        adm = cx.adm_day if cx.adm_day is not None else cx.day
        stay = [adm, cx.inst, ench, cx.event_id, main, None]
        stays.append(stay)
    if main is not None and (stay[A_DX] is None or cx.dis_day is not None):
        stay[A_DX] = main
    if cx.dis_day is not None:
        stay[A_DIS] = cx.dis_day
    if cx.scene in (4, 5) and cx.items:
        _apply_open(state, cx, stay, win)


def _apply_open(state: dict[str, Any], cx: Any, stay: list[Any], win: Windows) -> None:
    ench = cx.ench
    work = state.get("E")
    if work is None:
        work = state["E"] = []
    for w in work:
        if w[E_ENC] == ench:
            if len(w) == E_LOG:  # written before the log: what it holds becomes the base
                w.append([])
                w.append(_stay_base(w))
            break
    else:
        w = [ench, [], 0, 0, 0.0, 0.0, [], []]
        work.append(w)
    adm = stay[A_ADM]
    counters = w[E_COUNTERS]
    classes = w[E_CLASSES]
    tracked = win.tracked
    first_line = win.first_line
    passive = win.passive
    exam = win.exam
    # the accumulators are summed in locals and stored once (the same operations in the same order)
    charged, active, amount, exam_amount = w[E_CHARGED], w[E_ACTIVE], w[E_AMOUNT], w[E_EXAM]
    logged: list[Any] = [cx.event_id]  # this event's lines, for a later cancellation (E_LOG)
    for line in cx.items:
        row = line.row
        code, start, amt = line.code, line.start, line.amt
        span = line.span
        if line.ds is not None and line.ds > span:
            span = treated_span(line)
        kind = line.kind
        if span == 1:  # span_bits(start, span, adm), inline for the common one-day line
            off = start - adm
            bits = 1 << off if 0 <= off < MASK_DAYS else 0
        else:
            bits = span_bits(start, span, adm)
        charged |= bits
        amount = to_fen(amount + amt)
        if kind != "service" or row is None:
            active |= bits
            flags = F_ACTIVE
        else:
            flags = 0
            category = row["category"]
            if category not in passive:
                active |= bits
                flags = F_ACTIVE
            if category in exam:
                exam_amount = to_fen(exam_amount + amt)
                flags |= F_EXAM
        if code in tracked:
            flags |= F_TRACKED
            _count(counters, code, line.qty, start, line.span, adm)
        if kind == "drug" and row is not None and row["class"] in first_line:
            if row["class"] not in classes:
                classes.append(row["class"])
            logged.append([code, start, span, line.qty, amt, flags, row["class"]])
        else:
            logged.append([code, start, span, line.qty, amt, flags])
    w[E_CHARGED], w[E_ACTIVE], w[E_AMOUNT], w[E_EXAM] = charged, active, amount, exam_amount
    log = w[E_LOG]
    log.append(logged)
    lines = 0
    for entry in log:
        lines += len(entry) - 1
    if lines > E_LOG_LINES:  # the oldest events fold into the base (no longer reversible)
        base = w[E_BASE] if len(w) > E_BASE else None
        if base is None:
            base = [ench, [], 0, 0, 0.0, 0.0, []]
            if len(w) > E_BASE:
                w[E_BASE] = base
            else:
                w.append(base)
        while lines > E_LOG_LINES and len(log) > 1:
            entry = log.pop(0)
            lines -= len(entry) - 1
            fold_lines(base, entry, 1, adm)


def _stay_base(w: list[Any]) -> list[Any]:
    """An accumulator row holding what ``w`` holds (a copy)."""
    return [w[E_ENC], [list(c) for c in w[E_COUNTERS]], w[E_CHARGED], w[E_ACTIVE], w[E_AMOUNT], w[E_EXAM],
            list(w[E_CLASSES])]


def fold_lines(w: list[Any], items: list[Any], first: int, adm: int) -> None:
    """Add logged lines (``E_LOG`` items: ``items[first:]``) to an accumulator row, as ``_apply_open``
    adds lines."""
    classes = w[E_CLASSES]
    charged, active, amount, exam_amount = w[E_CHARGED], w[E_ACTIVE], w[E_AMOUNT], w[E_EXAM]
    for i in range(first, len(items)):
        item = items[i]
        start, span, flags = item[I_START], item[I_SPAN], item[I_FLAGS]
        if len(item) > I_CLASS and item[I_CLASS] not in classes:
            classes.append(item[I_CLASS])
        if span == 1:  # span_bits(start, span, adm), inline for the common one-day line
            off = start - adm
            bits = 1 << off if 0 <= off < MASK_DAYS else 0
        else:
            bits = span_bits(start, span, adm)
        charged |= bits
        if flags & F_ACTIVE:
            active |= bits
        amount = to_fen(amount + item[I_AMT])
        if flags & F_EXAM:
            exam_amount = to_fen(exam_amount + item[I_AMT])
        if flags & F_TRACKED:
            _count(w[E_COUNTERS], item[I_CODE], item[I_QTY], start, span, adm)
    w[E_CHARGED], w[E_ACTIVE], w[E_AMOUNT], w[E_EXAM] = charged, active, amount, exam_amount


def _count(counters: list[Any], code: str, qty: float, start: int, span: int, adm: int) -> None:
    """Add a line of a tracked code to the stay's counters (K rows): its quantity, its last day's, and
    the days it covers (``K_DAYS``, bit i = admission day ``adm`` + i)."""
    last = start + span - 1
    if span == 1:
        per_day = qty
        off = start - adm
        bits = 1 << off if 0 <= off < MASK_DAYS else 0
    else:
        per_day = 1.0
        bits = span_bits(start, span, adm)
    for c in counters:
        if c[K_CODE] == code:
            c[K_QTY] += qty
            if len(c) > K_DAYS:
                c[K_DAYS] |= bits
            else:  # a row written before the day mask: its last day is the one it knows
                c.append(span_bits(c[K_LAST_DAY], 1, adm) | bits)
            if c[K_LAST_DAY] == last:
                c[K_LAST_QTY] += per_day
            elif last > c[K_LAST_DAY]:
                c[K_LAST_DAY], c[K_LAST_QTY] = last, per_day
            return
    counters.append([code, qty, last, per_day, bits])


def stay_of(state: dict[str, Any], ench: int) -> list[Any] | None:
    """The ``A`` row of the encounter, or None."""
    for s in state.get("A", ()):
        if s[A_ENC] == ench:
            return s
    return None


def covered_day(c: list[Any], start: int, span: int, adm: int) -> int | None:
    """The first of the ``span`` days from ``start`` that an earlier line of counter ``c``'s code covers
    (its day mask; the last day only in a row written before the mask), or None."""
    if len(c) > K_DAYS:
        m = c[K_DAYS] & span_bits(start, span, adm)
        if m:
            return adm + (m & -m).bit_length() - 1
    last = c[K_LAST_DAY]
    return last if start <= last < start + span else None


def qty_on(w: list[Any], c: list[Any] | None, day: int, adm: int) -> float:
    """Units of counter ``c``'s code that the stay's earlier lines (open-stay row ``w``) charge on ``day``.

    The last day's count is kept (``K_LAST_QTY``); another day a line covers (``K_DAYS``) is counted
    from the logged lines that cover it (a multi-day line counts one a day) plus what the base holds
    of that day (its own last day's count, else one), at least one."""
    if c is None:
        return 0.0
    if day == c[K_LAST_DAY]:
        return c[K_LAST_QTY]
    off = day - adm
    if len(c) <= K_DAYS or day > c[K_LAST_DAY] or not 0 <= off < MASK_DAYS or not c[K_DAYS] >> off & 1:
        return 0.0
    code = c[K_CODE]
    q = 0.0
    if len(w) > E_LOG:
        for entry in w[E_LOG]:
            for it in entry[1:]:
                if it[I_CODE] == code and it[I_START] <= day < it[I_START] + it[I_SPAN] and it[I_FLAGS] & F_TRACKED:
                    q += it[I_QTY] if it[I_SPAN] == 1 else 1.0
    base = w[E_BASE] if len(w) > E_BASE else None
    if base is not None:
        for b in base[E_COUNTERS]:
            if b[K_CODE] == code:
                q += qty_on(base, b, day, adm)
                break
    return q if q > 0 else 1.0


def refold_stay(w: list[Any], adm: int) -> list[Any]:
    """The accumulators (an ``E`` row without log) that ``w``'s base and log add up to."""
    base = w[E_BASE] if len(w) > E_BASE else None
    out = _stay_base(base) if base is not None else [w[E_ENC], [], 0, 0, 0.0, 0.0, []]
    for entry in w[E_LOG] if len(w) > E_LOG else ():
        fold_lines(out, entry, 1, adm)
    return out


def _same_stay_sums(a: list[Any], b: list[Any]) -> bool:
    # counters compared without their day mask (K_DAYS): a release before it counts without one
    return (a[E_CHARGED] == b[E_CHARGED] and a[E_ACTIVE] == b[E_ACTIVE] and a[E_AMOUNT] == b[E_AMOUNT]
            and a[E_EXAM] == b[E_EXAM]
            and sorted(c[:K_DAYS] for c in a[E_COUNTERS]) == sorted(c[:K_DAYS] for c in b[E_COUNTERS])
            and set(a[E_CLASSES]) == set(b[E_CLASSES]))


def _cancel_stay_lines(state: dict[str, Any], cx: Any, codes: set[str] | None) -> None:
    """Take the cancelled lines out of the encounter's open-stay accumulators: the logged lines of
    the cancelled event (``cx.cancel``; every logged event of the encounter when it names only
    items), only those of ``codes`` when given; then the accumulators are refolded from base + log.
    Rows without a log, or whose log does not add up to them (an older release added lines
    without logging them during a rolling upgrade), are left as they are."""
    ench, cancels = cx.ench, cx.cancel
    w = next((r for r in state.get("E", ()) if r[E_ENC] == ench), None)
    adm = next((s[A_ADM] for s in state.get("A", ()) if s[A_ENC] == ench), None)
    if w is None or adm is None or len(w) <= E_LOG or not _same_stay_sums(refold_stay(w, adm), w):
        return
    log, changed = [], False
    for entry in w[E_LOG]:
        if cancels and entry[0] != cancels:
            log.append(entry)
            continue
        kept = [it for it in entry[1:] if codes is not None and it[I_CODE] not in codes]
        if len(kept) < len(entry) - 1:
            changed = True
        if kept:
            log.append([entry[0], *kept])
    if changed:
        w[E_LOG] = log
        w[E_ENC:E_LOG] = refold_stay(w, adm)


def treated_span(line: Any) -> int:
    """Days of a stay's line that the open-stay day masks (R27 挂床) take from it: a drug or herb line given
    with days of supply (a long-term order, 长期医嘱: ceftriaxone 02-20 → 02-27 is 7 days) is treatment on
    each day it runs, not on its start day only; discharge medication (``take_home``) is not care in the
    stay. Any other line: the days it covers (``line.span``)."""
    ds = line.ds
    if ds is not None and ds > line.span and line.kind in TREATED_KINDS and not line.take_home:
        return int(ds)
    return int(line.span)


TREATED_KINDS = frozenset({"drug", "herb"})


def day_bits(line: Any, adm: int) -> int:
    """Stay-day mask bits (bit i = admission day + i) of the days a line covers."""
    return span_bits(line.start, line.span, adm)


def span_bits(start: int, span: int, adm: int) -> int:
    """Stay-day mask bits of ``span`` days from day ``start`` (those inside the tracked days)."""
    lo = start - adm
    hi = lo + span
    if lo < 0:
        lo = 0
    if hi > MASK_DAYS:
        hi = MASK_DAYS
    return ((1 << (hi - lo)) - 1) << lo if hi > lo else 0


def _apply_period(state: dict[str, Any], cx: Any) -> None:
    rows = state.get("P")
    if rows is None:
        rows = state["P"] = []
    ench = cx.ench
    for line in cx.items:
        if not line.m & PERIOD:  # (the row's feature bits: it has a period_limit)
            continue
        for r in rows:
            if r[P_CODE] == line.code and r[P_ENC] == ench and r[P_DAY] == line.start:
                if line.qty > r[P_QTY]:
                    r[P_QTY] = line.qty
                    if len(r) > P_AMT:
                        r[P_AMT] = line.amt
                break
        else:
            rows.append([line.code, line.start, line.qty, ench, cx.inst, cx.event_id, line.amt])


def course_key(line: Any) -> str:
    return line.row["ingredient"] if line.kind in ("drug", "herb") else line.code


def _apply_course(state: dict[str, Any], cx: Any, win: Windows) -> None:
    rows = state.get("C")
    if rows is None:
        rows = state["C"] = []
    for line in cx.items:
        if not line.m & COURSE:  # (the row's feature bits: it has course_days)
            continue
        key = course_key(line)
        end = line.start + max(1, line.ds or 1) - 1
        entry = [cx.event_id, cx.ench, line.start, end, cx.inst]
        for r in rows:
            if r[C_KEY] == key:
                if line.start - r[C_LAST] > win.course_gap:  # a new course: the old one's log goes
                    r[C_FIRST], r[C_LAST] = line.start, end
                    del r[C_LOG:]
                    r.append([entry])
                    break
                if len(r) == C_LOG:  # written before the log: what it holds becomes the base
                    r.append([])
                    r.append([r[C_FIRST], r[C_LAST]])
                r[C_LAST] = max(r[C_LAST], end)
                r[C_LOG].append(entry)
                log = r[C_LOG]
                if len(log) > C_LOG_ENTRIES:  # the oldest entry folds into the base
                    old = log.pop(0)
                    base = r[C_BASE] if len(r) > C_BASE else None
                    first, last = replay_course(base, [old], win.course_gap)
                    if len(r) > C_BASE:
                        r[C_BASE] = [first, last]
                    else:
                        r.append([first, last])
                break
        else:
            rows.append([key, line.start, end, [entry]])


def replay_course(base: list[Any] | None, entries: list[Any], gap: int) -> tuple[int | None, int | None]:
    """(first_day, last_day) of a course from its base and its log entries in arrival order, as
    ``_apply_course`` moves them: a start more than ``gap`` days after the last day begins a new course."""
    first = last = None
    if base is not None:
        first, last = base[0], base[1]
    for e in entries:
        start, end = e[CL_START], e[CL_END]
        if first is None or last is None or start - last > gap:
            first, last = start, end
        elif end > last:
            last = end
    return first, last


def _cancel_course_entries(state: dict[str, Any], cx: Any, keys: set[str] | None, gap: int) -> None:
    """Take the cancelled event's (``cx.cancel``; without it, the encounter's) entries out of the course
    rows, only those of ``keys`` when given, and replay each row from base + log; a row left with
    nothing goes. Rows without a log, or whose log does not give their days, are left as they are."""
    rows = state.get("C")
    if not rows:
        return
    ench, cancels = cx.ench, cx.cancel
    out = []
    for r in rows:
        if len(r) <= C_LOG or (keys is not None and r[C_KEY] not in keys):
            out.append(r)
            continue
        base = r[C_BASE] if len(r) > C_BASE else None
        if replay_course(base, r[C_LOG], gap) != (r[C_FIRST], r[C_LAST]):
            out.append(r)  # an older release moved it without logging
            continue
        log = [e for e in r[C_LOG] if not (e[CL_EVENT] == cancels if cancels else e[CL_ENC] == ench)]
        if len(log) == len(r[C_LOG]):
            out.append(r)
            continue
        first, last = replay_course(base, log, gap)
        if first is None:
            continue  # nothing of the course is left
        r[C_FIRST], r[C_LAST], r[C_LOG] = first, last, log
        out.append(r)
    _put(state, "C", out)


# -- insured status ------------------------------------------------------------
STATUSES = status_model.STATUSES


def apply_status(state: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """Fold a bureau status update into the state (order of arrival does not matter)."""
    kind = status["status"]
    if kind not in STATUSES:
        raise ValueError(f"status {kind!r} is not one of {STATUSES}")
    frm = day_of_date(status["effective_from"])
    to = day_of_date(status["effective_to"]) if status.get("effective_to") else None
    if to is not None and to < frm:
        raise ValueError("effective_to is before effective_from")
    updated = int(datetime.fromisoformat(status["updated_at"]).timestamp())
    reason = status.get("reason") or None
    rows = [r for r in state.get("S", ()) if not (r[S_FROM] == frm and r[S_UPDATED] <= updated)]
    if any(r[S_FROM] == frm and r[S_UPDATED] > updated for r in rows):
        return state  # an older update for a period a newer one already decided
    rows.append([kind, frm, to, updated, reason])
    rows.sort(key=lambda r: (r[S_UPDATED], r[S_FROM]))
    newest = state.get("d")
    if newest is not None:
        rows = [r for r in rows if r[S_TO] is None or r[S_TO] >= newest - 1]
    keep = rows[-STATUS_MAX:]
    keep[:0] = [r for r in rows[:-STATUS_MAX] if r[S_STATUS] == "deceased"]  # a death is never trimmed away
    state["S"] = keep
    return state


def status_on(state: dict[str, Any], day: int) -> list[Any] | None:
    """The status row deciding ``day``, None if none.

    A timeline, not "latest record wins": death is terminal — a ``deceased`` row from a day on or
    before ``day`` decides it whatever was recorded later (a routine enrolment or an ``active``
    record after the death does not revive the patient). Only an explicit revocation lifts a
    death: a newer update for the same ``effective_from`` replaces the row (``apply_status``).
    Otherwise the latest update among the periods covering the day decides."""
    best = None
    death = None
    for r in state.get("S", ()):
        if r[S_FROM] <= day and (r[S_TO] is None or day <= r[S_TO]):
            if r[S_STATUS] == "deceased" and (death is None or r[S_FROM] < death[S_FROM]):
                death = r
            if best is None or (r[S_UPDATED], r[S_FROM]) > (best[S_UPDATED], best[S_FROM]):
                best = r
    return death if death is not None else best

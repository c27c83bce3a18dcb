"""The decision log's database: SQLite (embedded default) or PostgreSQL, one small interface.

``Store.open(url)``: ``sqlite:///path`` (WAL, ``busy_timeout``; the default is
``<PRESETTLE_DATA_DIR>/decisionlog.sqlite3``) or ``postgresql://…`` (psycopg 3). The SQL is
written once with ``?`` placeholders (turned into ``%s`` for psycopg) and kept to what both
dialects share: ``INSERT … ON CONFLICT DO NOTHING`` (idempotent by decision id, alert id,
feedback (alert, outcome)), text timestamps in one UTC format (services.decisionlog.records.utc_iso).
Connections are per thread (the ingress runs its handlers in a thread pool).
"""

from __future__ import annotations

import base64
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from services.decisionlog import schema, workflow
from services.decisionlog.records import dumps

# Scenes whose alerts open a review case by themselves (事中: at settlement): 6 门诊结算,
# 8 住院结算, 10 购药划卡. Any other decision can be opened by a reviewer (POST /v1/cases).
CASE_SCENES = frozenset({6, 8, 10, 0})  # settlement scenes (事中) and retrospective findings (scene 0, 事后)
PG_LOCK = 7_346_201  # advisory lock of the migrations


class StoreError(Exception):
    pass


def now_iso() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class Scope:
    """What a caller may read: one institution, a region (prefix of 统筹区 codes), or everything."""

    institution: str | None = None
    region_prefix: str | None = None

    def sql(self, alias: str = "") -> tuple[str, list[Any]]:
        p = f"{alias}." if alias else ""
        sql, params = "", []
        if self.institution is not None:
            sql, params = f" AND {p}institution_id = ?", [self.institution]
        if self.region_prefix is not None:
            sql, params = sql + f" AND {p}region LIKE ?", [*params, self.region_prefix + "%"]
        return sql, params

    def narrowed(self, institution: str) -> Scope | None:
        """This scope limited to one institution (None when the institution is outside it)."""
        if self.institution is not None and self.institution != institution:
            return None
        return Scope(institution=institution, region_prefix=self.region_prefix)


EVERYTHING = Scope()


def region_prefix(scope: str) -> str:
    """A region code as a prefix: ``330000`` (a province) covers ``3301xx``; ``330100`` covers ``330102``."""
    code = scope.strip()
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(parts))).decode().rstrip("=")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("cursor is not one this API returned") from None
    if not isinstance(parts, list) or len(parts) != n or not all(isinstance(p, str) for p in parts):
        raise ValueError("cursor is not one this API returned")
    return parts


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith(("postgresql://", "postgres://")):
            self.dialect: schema.Dialect = "postgresql"
        elif url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self.path = Path(url.removeprefix("sqlite:///"))
        else:
            raise StoreError("PRESETTLE_DATABASE_URL: use sqlite:///path or postgresql://…")
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, url: str, migrate: bool = True) -> Store:
        store = cls(url)
        if migrate:
            store.migrate()
        return store

    # -- connections ---------------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row)

    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing what may already be broken
                    pass
            self._all.clear()
        self._local = threading.local()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so writers queue instead of failing)."""
        conn = self.conn()
        if self.dialect == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                yield conn

    def execute(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(self._sql(sql), tuple(params))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn().execute(self._sql(sql), tuple(params))
        return [dict(r) for r in cur.fetchall()]

    def row(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    # -- migrations ----------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply the missing migrations; the versions applied now."""
        applied_now: list[int] = []
        with self.tx() as conn:
            if self.dialect == "postgresql":
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                         "name TEXT NOT NULL, applied_at TEXT NOT NULL)")
            done = {int(r["version"]) for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, name in schema.MIGRATIONS:
                if version in done:
                    continue
                for statement in schema.statements(version, self.dialect):
                    conn.execute(statement)
                self.execute(conn, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                             (version, name, now_iso()))
                applied_now.append(version)
        return applied_now

    def versions(self) -> list[int]:
        return [int(r["version"]) for r in self.rows("SELECT version FROM schema_migrations ORDER BY version")]

    # -- writes (the sink) ---------------------------------------------------------------------
    def write(self, decisions: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]] = (),
              feedback: Sequence[dict[str, Any]] = (), statuses: Sequence[dict[str, Any]] = (),
              revisions: Sequence[dict[str, Any]] = (), deadline_days: workflow.Deadlines = workflow.DEFAULT_DEADLINE_DAYS) -> dict[str, int]:
        """Store a batch in one transaction, idempotently; counts of what was new."""
        counts = {"decisions": 0, "feedback": 0, "statuses": 0, "revisions": 0, "cases": 0}
        stored_at = now_iso()
        with self.tx() as conn:
            # One statement per table for the whole batch (executemany): the sink's hot path.
            by_id = {row["decision_id"]: (row, alerts) for row, alerts in decisions}
            seen: set[str] = set()
            ids = list(by_id)
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                marks = ", ".join("?" for _ in chunk)
                seen |= {r[0] if not isinstance(r, dict) else r["decision_id"] for r in self.execute(
                    conn, f"SELECT decision_id FROM decisions WHERE decision_id IN ({marks})", chunk).fetchall()}
            new = [by_id[i] for i in ids if i not in seen]  # seen before: idempotent by decision id
            if new:
                rows = [{**row, "stored_at": stored_at} for row, _ in new]
                self._many(conn, "decisions", rows, "decision_id")
                self._many(conn, "alerts", [a for _, alerts in new for a in alerts], "alert_id")
                counts["decisions"] = len(new)
                opening = [(row, alerts) for row, alerts in new if alerts and row["scene"] in CASE_SCENES]
                cases, history = [], []
                for row, alerts in opening:
                    case = self._case_row(row, alerts, deadline_days)
                    cases.append(case)
                    history.append(self._history_row(case["case_id"], 0, "open", None, "open", "system", "system",
                                                     "found retrospectively (事后)" if row["scene"] == 0 else "alert at settlement (事中)",
                                                     case["amount"], [], case["opened_at"]))
                self._many(conn, "cases", cases, "case_id")
                self._many(conn, "case_history", history, "case_id, seq")
                counts["cases"] = len(cases)
            for table, items, key, name in (("feedback", feedback, "alert_id, outcome", "feedback"),
                                            ("patient_status", statuses, "status_key", "statuses"),
                                            ("rulebase_revisions", revisions, "revision_key", "revisions")):
                for item in items:
                    cur = self.execute(conn, _insert(table, item, key), list(item.values()))
                    counts[name] += max(cur.rowcount, 0)
        return counts

    def _many(self, conn: Any, table: str, rows: list[dict[str, Any]], conflict: str) -> None:
        if rows:
            sql = self._sql(_insert(table, rows[0], conflict))
            if self.dialect == "sqlite":
                conn.executemany(sql, [tuple(r.values()) for r in rows])
            else:
                with conn.cursor() as cur:
                    cur.executemany(sql, [tuple(r.values()) for r in rows])

    def _case_row(self, row: dict[str, Any], alerts: list[dict[str, Any]], deadline_days: workflow.Deadlines) -> dict[str, Any]:
        at = now_iso()
        return {
            "case_id": "c-" + row["decision_id"], "decision_id": row["decision_id"],
            "institution_id": row["institution_id"], "region": row.get("region"),
            "patient_ref": row["patient_ref"], "rule_ids": ",".join(sorted({a["rule_id"] for a in alerts})),
            "amount": round(sum(float(a["amount"] or 0) for a in alerts), 2), "state": "open", "outcome": None,
            "confirmed_amount": None, "deducted_amount": None, "initial_reviewer": None,
            "opened_at": at, "updated_at": at, "due_at": workflow.due(datetime.now(UTC), workflow.days_for(deadline_days, "open")),
            "occurred_at": row["occurred_at"],
        }

    def _open_case(self, conn: Any, row: dict[str, Any], alerts: list[dict[str, Any]], actor: str, role: str,
                   reason: str, deadline_days: workflow.Deadlines) -> int:
        case = self._case_row(row, alerts, deadline_days)
        at = case["opened_at"]
        cur = self.execute(conn, _insert("cases", case, "case_id"), list(case.values()))
        if cur.rowcount != 1:
            return 0
        self._history(conn, case["case_id"], 0, "open", None, "open", actor, role, reason, case["amount"], [], at)
        return 1

    @staticmethod
    def _history_row(case_id: str, seq: int, action: str, src: str | None, dst: str, actor: str, role: str,
                     reason: str | None, amount: float | None, attachments: list[str], at: str) -> dict[str, Any]:
        return {"case_id": case_id, "seq": seq, "action": action, "from_state": src, "to_state": dst, "actor": actor,
                "role": role, "reason": reason, "amount": amount, "attachments": dumps(attachments), "at": at}

    def _history(self, conn: Any, case_id: str, seq: int, action: str, src: str | None, dst: str, actor: str,
                 role: str, reason: str | None, amount: float | None, attachments: list[str], at: str) -> None:
        h = self._history_row(case_id, seq, action, src, dst, actor, role, reason, amount, attachments, at)
        self.execute(conn, "INSERT INTO case_history (case_id, seq, action, from_state, to_state, actor, role, "
                     "reason, amount, attachments, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", list(h.values()))

    def provider_candidates(self, subject: str, sid: str, first_day: str, last_day: str | None, before: str,
                            rule_id: str, scenes: Sequence[int], limit: int = 10_000) -> list[dict[str, Any]]:
        """Decisions a provider-status period recorded late may concern (services.decisionlog.retro): at
        the institution (``subject`` institution) or with the encounter doctor (doctor), at ``scenes``,
        dated ``first_day``..``last_day`` (China time days, inclusive; open without ``last_day``),
        decided before ``before`` (UTC, the store's format) and without a ``rule_id`` alert (flagged
        live). At most ``limit``, oldest first."""
        column = "institution_id" if subject == "institution" else "doctor_id"
        marks = ", ".join("?" for _ in scenes)
        sql = (f"SELECT decision_id, event_id, institution_id, region, patient_ref, scene, occurred_at, day, "
               f"institution_level, department, doctor_id FROM decisions d WHERE d.{column} = ? AND d.day >= ? "
               f"{'AND d.day <= ? ' if last_day else ''}AND d.scene IN ({marks}) AND d.decided_at < ? "
               f"AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.decision_id = d.decision_id AND a.rule_id = ?) "
               f"ORDER BY d.occurred_at, d.decision_id LIMIT {int(limit)}")
        params: list[Any] = [sid, first_day, *([last_day] if last_day else []), *scenes, before, rule_id]
        return self.rows(sql, params)

    # -- decisions -------------------------------------------------------------------------------
    def decision(self, decision_id: str, scope: Scope = EVERYTHING) -> dict[str, Any] | None:
        where, params = scope.sql()
        found = self.row(f"SELECT record, region FROM decisions WHERE decision_id = ?{where}",
                         [decision_id, *params])
        if found is None:
            return None
        record = orjson.loads(found["record"])
        record["institution_region"] = found["region"]
        record["feedback"] = [
            {k: r[k] for k in ("alert_id", "outcome", "rule_id", "reason", "dialect", "received_at")}
            for r in self.rows("SELECT * FROM feedback WHERE decision_id = ? ORDER BY received_at, alert_id",
                               [decision_id])]
        case = self.row("SELECT case_id, state, outcome FROM cases WHERE decision_id = ?", [decision_id])
        record["case"] = case
        return record

    def decisions(self, scope: Scope = EVERYTHING, *, institution: str | None = None,
                  patient_ref: str | None = None, rule_id: str | None = None, scene: int | None = None,
                  start: str | None = None, end: str | None = None, has_alerts: bool | None = None,
                  cursor: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
        """A page of decisions, newest first, and the cursor of the next page (None at the end)."""
        where, params = scope.sql("d")
        for clause, value in (("d.institution_id = ?", institution), ("d.patient_ref = ?", patient_ref),
                              ("d.scene = ?", scene), ("d.occurred_at >= ?", start), ("d.occurred_at < ?", end)):
            if value is not None:
                where += f" AND {clause}"
                params.append(value)
        if rule_id is not None:
            where += " AND EXISTS (SELECT 1 FROM alerts a WHERE a.decision_id = d.decision_id AND a.rule_id = ?)"
            params.append(rule_id)
        if has_alerts is not None:
            where += " AND d.alert_count > 0" if has_alerts else " AND d.alert_count = 0"
        if cursor:
            at, did = decode_cursor(cursor, 2)
            where += " AND (d.occurred_at < ? OR (d.occurred_at = ? AND d.decision_id < ?))"
            params += [at, at, did]
        found = self.rows(f"SELECT d.decision_id, d.event_id, d.institution_id, d.region, d.patient_ref, d.scene, "
                          f"d.occurred_at, d.decided_at, d.alert_count, d.amount, d.rulebase_revision, d.engine_ms, "
                          f"d.record FROM decisions d WHERE 1 = 1{where} "
                          f"ORDER BY d.occurred_at DESC, d.decision_id DESC LIMIT ?", [*params, limit + 1])
        more = len(found) > limit
        page = found[:limit]
        for r in page:
            record = orjson.loads(r.pop("record"))
            r["rule_ids"] = sorted({a["rule_id"] for a in record.get("alerts") or []})
        nxt = encode_cursor(page[-1]["occurred_at"], page[-1]["decision_id"]) if more and page else None
        return page, nxt

    def iter_decisions(self, scope: Scope = EVERYTHING, page_size: int = 1000,
                       **filters: Any) -> Iterator[dict[str, Any]]:
        """Every decision matching the filters, page by page (an export of any size)."""
        cursor: str | None = None
        while True:
            page, cursor = self.decisions(scope, cursor=cursor, limit=page_size, **filters)
            yield from page
            if cursor is None:
                return

    def patient_recent(self, patient_ref: str, scope: Scope = EVERYTHING, limit: int = 20) -> list[dict[str, Any]]:
        page, _ = self.decisions(scope, patient_ref=patient_ref, limit=limit)
        return page

    def counts(self) -> dict[str, int]:
        out = {}
        for table in ("decisions", "alerts", "feedback", "patient_status", "rulebase_revisions", "cases"):
            found = self.row(f"SELECT COUNT(*) AS n FROM {table}")
            out[table] = int(found["n"]) if found else 0
        return out

    # -- cases ---------------------------------------------------------------------------------
    def open_case(self, decision_id: str, scope: Scope, actor: str, role: str, reason: str,
                  deadline_days: workflow.Deadlines) -> tuple[dict[str, Any] | None, bool]:
        """Open a case for a decision (retrospective review); (the case, whether it is new)."""
        where, params = scope.sql()
        with self.tx() as conn:
            found = self.execute(conn, f"SELECT * FROM decisions WHERE decision_id = ?{where}",
                                 [decision_id, *params]).fetchone()
            if found is None:
                return None, False
            row = dict(found)
            alerts = [dict(a) for a in self.execute(conn, "SELECT rule_id, amount FROM alerts WHERE decision_id = ?",
                                                    [decision_id]).fetchall()]
            new = self._open_case(conn, row, alerts, actor, role, reason, deadline_days) == 1
        return self.case("c-" + decision_id, scope), new

    def case(self, case_id: str, scope: Scope = EVERYTHING) -> dict[str, Any] | None:
        where, params = scope.sql()
        found = self.row(f"SELECT * FROM cases WHERE case_id = ?{where}", [case_id, *params])
        if found is None:
            return None
        found["history"] = [
            {**h, "attachments": orjson.loads(h["attachments"])}
            for h in self.rows("SELECT seq, action, from_state, to_state, actor, role, reason, amount, attachments, at "
                               "FROM case_history WHERE case_id = ? ORDER BY seq", [case_id])]
        found["overdue"] = _overdue(found)
        found["allowed_actions"] = workflow.allowed(found["state"])
        return found

    def cases(self, scope: Scope = EVERYTHING, *, state: str | None = None, overdue: bool | None = None,
              institution: str | None = None, decision_id: str | None = None, cursor: str | None = None,
              limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
        where, params = scope.sql()
        for clause, value in (("state = ?", state), ("institution_id = ?", institution),
                              ("decision_id = ?", decision_id)):
            if value is not None:
                where += f" AND {clause}"
                params.append(value)
        if overdue is not None:
            now = now_iso()
            where += (" AND state <> 'closed' AND due_at < ?" if overdue
                      else " AND (state = 'closed' OR due_at >= ?)")
            params.append(now)
        if cursor:
            at, cid = decode_cursor(cursor, 2)
            where += " AND (opened_at < ? OR (opened_at = ? AND case_id < ?))"
            params += [at, at, cid]
        found = self.rows(f"SELECT * FROM cases WHERE 1 = 1{where} ORDER BY opened_at DESC, case_id DESC LIMIT ?",
                          [*params, limit + 1])
        more = len(found) > limit
        page = found[:limit]
        for c in page:
            c["overdue"] = _overdue(c)
        return page, (encode_cursor(page[-1]["opened_at"], page[-1]["case_id"]) if more and page else None)

    def act(self, case_id: str, scope: Scope, action: str, role: str, actor: str, reason: str | None,
            amount: float | None, attachments: list[str],
            deadline_days: workflow.Deadlines) -> dict[str, Any] | None:
        """Apply one workflow action (workflow.WorkflowError when refused); the case after it, None if unseen."""
        where, params = scope.sql()
        with self.tx() as conn:
            found = self.execute(conn, f"SELECT * FROM cases WHERE case_id = ?{where}", [case_id, *params]).fetchone()
            if found is None:
                return None
            c = dict(found)
            now = datetime.now(UTC)
            t = workflow.transition(workflow.Case(c["state"], float(c["amount"]), c["confirmed_amount"],
                                                  c["initial_reviewer"]),
                                    action, role, actor, reason, amount, now, deadline_days)
            at = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            sets: dict[str, Any] = {"state": t.to_state, "updated_at": at, "due_at": t.due_at}
            if action == "confirm":
                sets.update(confirmed_amount=t.amount, initial_reviewer=actor)
            elif action == "dismiss":
                sets.update(initial_reviewer=actor, deducted_amount=0.0)
            if t.to_state == "closed":
                sets["outcome"] = t.outcome
                sets["deducted_amount"] = t.amount if t.outcome != "dismissed" else 0.0
            assignments = ", ".join(f"{k} = ?" for k in sets)
            # Compare-and-set on the state: two reviewers acting at once cannot both move the case.
            cur = self.execute(conn, f"UPDATE cases SET {assignments} WHERE case_id = ? AND state = ?",
                               [*sets.values(), case_id, c["state"]])
            if cur.rowcount != 1:
                raise workflow.WorkflowError(409, "action", "the case changed meanwhile; read it again")
            seq_row = self.execute(conn, "SELECT MAX(seq) AS m FROM case_history WHERE case_id = ?",
                                   [case_id]).fetchone()
            seq = int(dict(seq_row)["m"] or 0) + 1
            self._history(conn, case_id, seq, action, t.from_state, t.to_state, actor, role, reason, t.amount,
                          attachments, at)
        return self.case(case_id, scope)


    # -- risk lists and reports ---------------------------------------------------------------------
    RISK_KEYS = {  # kind → (entity key, peer group) as SQL over decisions d
        "patients": ("d.patient_ref", "''"),
        "doctors": ("d.institution_id || '/' || d.doctor_id", "d.institution_id || '/' || COALESCE(d.department, '')"),
        "institutions": ("d.institution_id", "COALESCE(d.institution_level, 0)"),
    }

    def _period(self, scope: Scope, start: str | None, end: str | None, alias: str = "d",
                column: str = "occurred_at") -> tuple[str, list[Any]]:
        where, params = scope.sql(alias)
        if start:
            where += f" AND {alias}.{column} >= ?"
            params.append(start)
        if end:
            where += f" AND {alias}.{column} < ?"
            params.append(end)
        return where, params

    def risk(self, kind: str, scope: Scope = EVERYTHING, start: str | None = None, end: str | None = None,
             limit: int = 50) -> list[dict[str, Any]]:
        """Ranked entities with their score parts (services/decisionlog/risk.py)."""
        from services.decisionlog import risk

        key, peer = self.RISK_KEYS[kind]
        where, params = self._period(scope, start, end)
        if kind == "doctors":
            where += " AND d.doctor_id IS NOT NULL"
        group = key if peer == "''" else f"{key}, {peer}"  # PostgreSQL refuses a constant in GROUP BY
        rows = self.rows(f"SELECT {key} AS key, {peer} AS peer, COUNT(*) AS decisions, SUM(d.alert_count) AS alerts, "
                         f"SUM(d.amount) AS amount FROM decisions d WHERE 1 = 1{where} GROUP BY {group}", params)
        confirmed = {r["key"]: int(r["n"]) for r in self.rows(
            f"SELECT {key} AS key, COUNT(*) AS n FROM cases c JOIN decisions d ON d.decision_id = c.decision_id "
            f"WHERE c.confirmed_amount IS NOT NULL AND (c.outcome IS NULL OR c.outcome <> 'dismissed'){where} "
            f"GROUP BY {key}", params)}
        return risk.score(rows, confirmed, limit)

    GROUPS = {"institution": "d.institution_id", "region": "COALESCE(d.region, '')", "day": "d.day",
              "month": "SUBSTR(d.day, 1, 7)"}

    def summary(self, group_by: str, scope: Scope = EVERYTHING, start: str | None = None,
                end: str | None = None) -> list[dict[str, Any]]:
        """Per group: decisions, alerts, alert rate, amount at stake, feedback (accepted / overridden),
        cases by outcome and the amount recovered (deducted)."""
        where, params = self._period(scope, start, end)
        if group_by == "rule":
            key = "a.rule_id"
            base = self.rows(f"SELECT {key} AS grp, COUNT(DISTINCT a.decision_id) AS decisions, COUNT(*) AS alerts, "
                             f"SUM(a.amount) AS amount FROM alerts a JOIN decisions d ON d.decision_id = a.decision_id "
                             f"WHERE 1 = 1{where} GROUP BY {key}", params)
            fb = self.rows(f"SELECT f.rule_id AS grp, f.outcome, COUNT(*) AS n FROM feedback f JOIN decisions d "
                           f"ON d.decision_id = f.decision_id WHERE 1 = 1{where} GROUP BY f.rule_id, f.outcome", params)
            cases = self.rows(f"SELECT a.rule_id AS grp, c.outcome, COUNT(DISTINCT c.case_id) AS n, "
                              f"SUM(c.deducted_amount) AS deducted FROM cases c JOIN decisions d ON "
                              f"d.decision_id = c.decision_id JOIN alerts a ON a.decision_id = c.decision_id "
                              f"WHERE 1 = 1{where} GROUP BY a.rule_id, c.outcome", params)
        else:
            key = self.GROUPS[group_by]
            base = self.rows(f"SELECT {key} AS grp, COUNT(*) AS decisions, SUM(d.alert_count) AS alerts, "
                             f"SUM(d.amount) AS amount FROM decisions d WHERE 1 = 1{where} GROUP BY {key}", params)
            fb = self.rows(f"SELECT {key} AS grp, f.outcome, COUNT(*) AS n FROM feedback f JOIN decisions d "
                           f"ON d.decision_id = f.decision_id WHERE 1 = 1{where} GROUP BY {key}, f.outcome", params)
            cases = self.rows(f"SELECT {key} AS grp, c.outcome, COUNT(*) AS n, SUM(c.deducted_amount) AS deducted "
                              f"FROM cases c JOIN decisions d ON d.decision_id = c.decision_id WHERE 1 = 1{where} "
                              f"GROUP BY {key}, c.outcome", params)
        out: dict[str, dict[str, Any]] = {}
        for r in base:
            decisions, alerts = int(r["decisions"] or 0), int(r["alerts"] or 0)
            out[str(r["grp"])] = {
                group_by: r["grp"], "decisions": decisions, "alerts": alerts,
                "alert_rate": round(alerts / decisions, 4) if decisions else 0.0,
                "amount": round(float(r["amount"] or 0), 2), "feedback": {"accepted": 0, "overridden": 0},
                "cases": {"open": 0, "dismissed": 0, "upheld": 0, "partially_upheld": 0}, "amount_recovered": 0.0}
        for r in fb:
            if str(r["grp"]) in out:
                out[str(r["grp"])]["feedback"][r["outcome"]] = int(r["n"])
        for r in cases:
            if str(r["grp"]) in out:
                entry = out[str(r["grp"])]
                entry["cases"][r["outcome"] or "open"] += int(r["n"])
                entry["amount_recovered"] = round(entry["amount_recovered"] + float(r["deducted"] or 0), 2)
        return sorted(out.values(), key=lambda e: str(e[group_by]))

    def top_alerts(self, scope: Scope, start: str | None, end: str | None, limit: int = 20) -> list[dict[str, Any]]:
        where, params = self._period(scope, start, end, alias="a")
        return self.rows(f"SELECT a.alert_id, a.decision_id, a.rule_id, a.severity, a.amount, a.day FROM alerts a "
                         f"WHERE 1 = 1{where} ORDER BY a.amount DESC, a.alert_id LIMIT ?", [*params, limit])

    def totals(self, scope: Scope, since_day: str) -> dict[str, Any]:
        """Decisions, alerts and amount at stake since a China date (the board's today / month)."""
        where, params = scope.sql("d")
        found = self.row(f"SELECT COUNT(*) AS decisions, COALESCE(SUM(d.alert_count), 0) AS alerts, "
                         f"COALESCE(SUM(d.amount), 0) AS amount FROM decisions d WHERE d.day >= ?{where}",
                         [since_day, *params]) or {}
        return {"decisions": int(found.get("decisions") or 0), "alerts": int(found.get("alerts") or 0),
                "amount": round(float(found.get("amount") or 0), 2)}


def _overdue(case: dict[str, Any]) -> bool:
    return case["state"] != "closed" and bool(case.get("due_at")) and str(case["due_at"]) < now_iso()


def _insert(table: str, values: dict[str, Any], conflict: str) -> str:
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({conflict}) DO NOTHING"


def default_url(data_dir: str) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'decisionlog.sqlite3'}"

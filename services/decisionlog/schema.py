"""The decision log's schema as versioned migrations, for SQLite and PostgreSQL.

A migration is ``(version, name, statements)``; :func:`statements` gives the SQL of one dialect.
Applied versions are recorded in ``schema_migrations`` (version, name, applied_at): start-up
applies the missing ones in order, inside one transaction per migration, under a lock (SQLite
``BEGIN IMMEDIATE``, PostgreSQL an advisory lock), so the sink and the ingress may start together.
Never edit a released migration: add the next version.

Append-only: the history tables (decisions, alerts, feedback, status, rule-base revisions and the
case history) refuse UPDATE and DELETE with a trigger; a case's current state (``cases``) is the
projection of its history and may be updated, never deleted.
"""

from __future__ import annotations

from typing import Literal

Dialect = Literal["sqlite", "postgresql"]

APPEND_ONLY = ("decisions", "alerts", "feedback", "patient_status", "rulebase_revisions", "case_history")
NO_DELETE = ("cases",)

_V1_TABLES = [
    """CREATE TABLE decisions (
        decision_id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        institution_id TEXT NOT NULL,
        region TEXT,
        patient_ref TEXT NOT NULL,
        scene INTEGER NOT NULL,
        occurred_at TEXT NOT NULL,
        day TEXT NOT NULL,
        decided_at TEXT NOT NULL,
        alert_count INTEGER NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        rulebase_revision TEXT,
        engine_ms DOUBLE PRECISION,
        request_id TEXT,
        record TEXT NOT NULL,
        stored_at TEXT NOT NULL)""",
    "CREATE INDEX decisions_time ON decisions (occurred_at, decision_id)",
    "CREATE INDEX decisions_institution ON decisions (institution_id, occurred_at)",
    "CREATE INDEX decisions_patient ON decisions (patient_ref, occurred_at)",
    "CREATE INDEX decisions_day ON decisions (day)",
    """CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        rule_version TEXT,
        severity TEXT,
        amount DOUBLE PRECISION NOT NULL,
        institution_id TEXT NOT NULL,
        region TEXT,
        patient_ref TEXT NOT NULL,
        doctor_id TEXT,
        department TEXT,
        day TEXT NOT NULL,
        occurred_at TEXT NOT NULL)""",
    "CREATE INDEX alerts_decision ON alerts (decision_id)",
    "CREATE INDEX alerts_rule ON alerts (rule_id, day)",
    "CREATE INDEX alerts_institution ON alerts (institution_id, day)",
    """CREATE TABLE feedback (
        alert_id TEXT NOT NULL,
        outcome TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        institution_id TEXT NOT NULL,
        reason TEXT,
        dialect TEXT,
        received_at TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (alert_id, outcome))""",
    "CREATE INDEX feedback_decision ON feedback (decision_id)",
    """CREATE TABLE patient_status (
        status_key TEXT PRIMARY KEY,
        patient_ref TEXT NOT NULL,
        status TEXT,
        effective_from TEXT,
        effective_to TEXT,
        updated_at TEXT,
        received_at TEXT NOT NULL,
        record TEXT NOT NULL)""",
    """CREATE TABLE rulebase_revisions (
        revision_key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        revision TEXT NOT NULL,
        received_at TEXT NOT NULL,
        record TEXT NOT NULL)""",
    """CREATE TABLE cases (
        case_id TEXT PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        institution_id TEXT NOT NULL,
        region TEXT,
        patient_ref TEXT NOT NULL,
        rule_ids TEXT NOT NULL,
        amount DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        outcome TEXT,
        confirmed_amount DOUBLE PRECISION,
        deducted_amount DOUBLE PRECISION,
        initial_reviewer TEXT,
        opened_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        due_at TEXT,
        occurred_at TEXT NOT NULL)""",
    "CREATE INDEX cases_state ON cases (state, due_at)",
    "CREATE INDEX cases_institution ON cases (institution_id, opened_at)",
    """CREATE TABLE case_history (
        case_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        action TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        reason TEXT,
        amount DOUBLE PRECISION,
        attachments TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (case_id, seq))""",
]


def _guards(dialect: Dialect) -> list[str]:
    out: list[str] = []
    if dialect == "postgresql":
        out.append("""CREATE OR REPLACE FUNCTION presettle_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$""")
        for table in APPEND_ONLY:
            out.append(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION presettle_append_only()")
        for table in NO_DELETE:
            out.append(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                       "FOR EACH ROW EXECUTE FUNCTION presettle_append_only()")
        return out
    for table in APPEND_ONLY:
        for op in ("UPDATE", "DELETE"):
            out.append(f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END")
    for table in NO_DELETE:
        out.append(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table}: DELETE refused'); END")
    return out


# (version, name, statements by dialect)
MIGRATIONS: list[tuple[int, str]] = [
    (1, "decisions, alerts, feedback, status, rule-base revisions, cases and their append-only history"),
    (2, "decisions: institution level, department and doctor (risk lists and their peer groups)"),
]

_V2 = [
    "ALTER TABLE decisions ADD COLUMN institution_level INTEGER",
    "ALTER TABLE decisions ADD COLUMN department TEXT",
    "ALTER TABLE decisions ADD COLUMN doctor_id TEXT",
    "CREATE INDEX decisions_doctor ON decisions (doctor_id, day)",
]


def statements(version: int, dialect: Dialect) -> list[str]:
    if version == 1:
        return [*_V1_TABLES, *_guards(dialect)]
    if version == 2:
        return list(_V2)
    raise KeyError(version)

"""Institution and doctor status timelines (services/rules/providers.py): pure, no broker."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.contracts.provider_status import DoctorStatus, InstitutionStatus, parse
from services.rules.providers import Providers
from services.rules.timeutil import day_of_date


def inst(status: str, frm: str, to: str | None = None, updated: str = "2026-02-28T09:00:00+08:00",
         **extra: Any) -> dict[str, Any]:
    body = {"institution_id": "H1", "status": status, "effective_from": frm, "effective_to": to,
            "updated_at": updated, **extra}
    return InstitutionStatus.model_validate(body).to_wire()


def d(text: str) -> int:
    return day_of_date(text)


def test_a_period_affects_only_the_days_inside_it() -> None:
    p = Providers()
    p.apply(inst("suspended", "2026-03-01", "2026-03-31", document_no="浙医保稽〔2026〕12号"))
    assert p.affecting("institution", "H1", d("2026-02-28")) is None
    assert p.affecting("institution", "H1", d("2026-03-01")).status == "suspended"
    assert p.affecting("institution", "H1", d("2026-03-31")).document_no == "浙医保稽〔2026〕12号"
    assert p.affecting("institution", "H1", d("2026-04-01")) is None
    assert p.affecting("institution", "H2", d("2026-03-10")) is None


def test_the_latest_update_covering_a_day_decides_whatever_the_arrival_order() -> None:
    suspended = inst("suspended", "2026-03-01", updated="2026-02-28T09:00:00+08:00")
    lifted = inst("active", "2026-03-15", updated="2026-03-14T09:00:00+08:00")
    for order in ([suspended, lifted], [lifted, suspended]):
        p = Providers()
        for record in order:
            p.apply(record)
        assert p.affecting("institution", "H1", d("2026-03-10")).status == "suspended"
        assert p.affecting("institution", "H1", d("2026-03-20")) is None  # 恢复 from the 15th


def test_a_revocation_withdraws_the_period_and_an_older_update_does_not_undo_it() -> None:
    p = Providers()
    p.apply(inst("suspended", "2026-03-01", "2026-03-31"))
    revoked = inst("suspended", "2026-03-01", "2026-03-31", updated="2026-03-05T09:00:00+08:00", revoked=True)
    assert p.apply(revoked)
    assert p.affecting("institution", "H1", d("2026-03-10")) is None
    assert not p.apply(inst("suspended", "2026-03-01", "2026-03-31"))  # a late copy of the older record
    assert p.affecting("institution", "H1", d("2026-03-10")) is None
    assert p.apply(revoked)  # a retry of the same update: idempotent
    assert p.timeline("institution", "H1") == [
        {"status": "suspended", "effective_from": "2026-03-01", "effective_to": "2026-03-31", "revoked": True,
         "reason": None, "document_no": None, "updated_at": "2026-03-05T09:00:00+08:00"}]


def test_doctor_timelines_are_apart_from_institutions() -> None:
    p = Providers()
    p.apply(DoctorStatus.model_validate({"doctor_id": "H1", "status": "suspended", "effective_from": "2026-03-01",
                                         "updated_at": "2026-02-28T09:00:00"}).to_wire())
    assert p.affecting("doctor", "H1", d("2026-03-02")).status == "suspended"
    assert p.affecting("institution", "H1", d("2026-03-02")) is None
    assert p.counts() == {"institution": 0, "doctor": 1}


def test_wire_records_carry_their_subject_and_a_key_per_update() -> None:
    a = inst("suspended", "2026-03-01")
    b = inst("suspended", "2026-03-01", updated="2026-03-05T09:00:00+08:00")
    assert a["subject"] == "institution" and a["updated_at"] == "2026-02-28T09:00:00+08:00"
    assert parse(a).record_key() == "institution/H1/2026-03-01/2026-02-28T09:00:00+08:00"
    assert parse(a).record_key() != parse(b).record_key()
    with pytest.raises(ValueError, match="subject"):
        parse({k: v for k, v in a.items() if k != "subject"})


@pytest.mark.parametrize("body, field", [
    ({"status": "terminated", "doctor_id": "D1"}, "status"),  # a doctor is suspended or active, not terminated
    ({"effective_to": "2026-02-01"}, "effective_to is before effective_from"),
    ({"doctor_id": "D 1"}, "doctor_id"),
])
def test_bad_doctor_status_names_the_field(body: dict[str, Any], field: str) -> None:
    base = {"doctor_id": "D1", "status": "suspended", "effective_from": "2026-03-01", "updated_at": "2026-02-28T09:00:00"}
    with pytest.raises(ValidationError) as exc:
        DoctorStatus.model_validate({**base, **body})
    assert field in str(exc.value)

"""Insured-status updates, re-exported from their owner, :mod:`services.contracts.status`."""

from services.contracts.status import STATUSES, PatientStatus, StatusKind

__all__ = ["STATUSES", "PatientStatus", "StatusKind"]

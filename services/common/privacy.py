"""Pseudonyms for patient identifiers: what logs and dashboards show instead.

Patient ids are personal data. Logs, metric labels and the live page carry
only a keyed hash (``PRESETTLE_PSEUDONYM_KEY``) or a masked form.
"""

from __future__ import annotations

import hashlib
import os

_KEY = os.environ.get("PRESETTLE_PSEUDONYM_KEY", "presettle-dev").encode()[:64]


def pseudonym(patient_id: str) -> str:
    return "p-" + hashlib.blake2b(patient_id.encode(), key=_KEY, digest_size=6).hexdigest()


def mask(patient_id: str) -> str:
    """``3301021985…`` → ``33******85`` (first two and last two characters)."""
    if len(patient_id) <= 4:
        return "*" * len(patient_id)
    return patient_id[:2] + "*" * (len(patient_id) - 4) + patient_id[-2:]

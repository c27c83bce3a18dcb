"""Pseudonyms for patient identifiers: what logs and dashboards show instead.

Patient ids are personal data. Logs and metric labels carry only a keyed hash
(``PRESETTLE_PSEUDONYM_KEY``, required in production: patient ids are short
enough to enumerate, so a hash with a known key would not hide them); the live
page shows a masked form.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from services.common.settings import get_settings


@lru_cache(maxsize=1)
def _key() -> bytes:
    return get_settings().pseudonym_key.get_secret_value().encode()[:64]


def pseudonym(patient_id: str) -> str:
    return "p-" + hashlib.blake2b(patient_id.encode(), key=_key(), digest_size=6).hexdigest()


MASK_MIN_LEN = 10


def mask(patient_id: str) -> str:
    """``330102198501011234`` → ``33**************34``; ids shorter than 10 characters are masked whole."""
    if len(patient_id) < MASK_MIN_LEN:
        return "*" * len(patient_id)
    return patient_id[:2] + "*" * (len(patient_id) - 4) + patient_id[-2:]

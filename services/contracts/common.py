"""Shared wire constants: the time zone of naive timestamps and the id pattern."""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from typing import Annotated

from pydantic import Field

# Naive timestamps are read as China Standard Time (UTC+08:00), the zone every HIS in scope runs in.
CST = timezone(timedelta(hours=8), "CST")

ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
ID_MAX = 64
ID_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")  # ID_PATTERN with its length bounds

Id = Annotated[str, Field(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]
Code = Annotated[str, Field(min_length=1, max_length=32)]
Text = Annotated[str, Field(max_length=200)]

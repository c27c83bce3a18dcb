"""Helpers shared by the dialects: lenient wire types, stable ids, error paths.

Vendors send numbers as strings (``"cnt": "30"``), codes as numbers (``"gend": 1``),
empty strings for "no value" and dates in several layouts. The types here accept
all of that at the edge and hand the mappings clean Python values; their JSON
Schema says what is accepted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, WithJsonSchema, model_validator

from services.contracts.common import CST, ID_RE  # noqa: F401  (CST re-exported for the dialects)


# -- error paths ------------------------------------------------------------------
def field_path(loc: Iterable[Any]) -> str:
    """``("body", "input", "data", "patient_dtos", 0, "gend")`` → ``input.data.patient_dtos[0].gend``."""
    out = ""
    for part in loc:
        if part in ("body", "query", "header", "path"):
            continue
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def first_error(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(field, message) of the first pydantic/FastAPI error, for a one-line ``err_msg``."""
    if not errors:
        return "body", "invalid request"
    err = errors[0]
    field = field_path(err.get("loc", ()))
    if err.get("type") == "json_invalid":
        return "body", "the request body is not valid JSON"
    message = str(err.get("msg", "invalid value"))
    if err.get("type") == "missing":
        message = "required field is missing"
    return field, message


BODY_PARSE_FAILED = "There was an error parsing the body"  # FastAPI's 400 detail when reading the body failed


def unreadable_body(exc: Exception) -> str | None:
    """The message for FastAPI's 400 "error parsing the body" (raised, without a field, when the body
    is not UTF-8 text and so cannot be JSON); None for any other HTTP error."""
    if getattr(exc, "status_code", None) != 400 or getattr(exc, "detail", None) != BODY_PARSE_FAILED:
        return None
    if isinstance(exc.__cause__, UnicodeDecodeError):
        return "the request body is not valid JSON (it is not UTF-8 text)"
    return "the request body is not valid JSON (it could not be read)"


# -- ids ----------------------------------------------------------------------------
def digest(value: Any, size: int = 10) -> str:
    """A stable hex digest of a JSON-compatible value (key order does not matter)."""
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(raw, digest_size=size).hexdigest()


def safe_id(raw: str, prefix: str = "x-") -> str:
    """``raw`` when it is a valid native id, else a stable digest of it (same input, same id)."""
    if ID_RE.match(raw):
        return raw
    return prefix + hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()


# -- lenient scalars ----------------------------------------------------------------
def _code(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a code (string or integer), got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    return value


def parse_time(value: Any) -> datetime:
    """Timestamps in the layouts HIS vendors use; naive ones are China Standard Time.

    ``2026-03-01``, ``2026-03-01 09:30:00``, ``2026-03-01T09:30:00+08:00``,
    ``2026/03/01 09:30``, ``20260301``, ``20260301093000``, epoch milliseconds.
    """
    if isinstance(value, int) and not isinstance(value, bool) and len(str(value)) in (8, 14):
        value = str(value)  # yyyyMMdd / yyyyMMddHHmmss sent as a JSON number
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # Only epoch milliseconds of this era (13 digits: 2001–2286) are taken as such.
        if not (isinstance(value, int) or value.is_integer()) or not 10**12 <= value < 10**13:
            raise ValueError(f"{value!r} is not a date/time (use yyyy-MM-dd HH:mm:ss or epoch milliseconds)")
        dt = datetime.fromtimestamp(value / 1000, tz=timezone.utc).astimezone(CST)
    elif isinstance(value, str):
        text = value.strip().replace("/", "-")
        if re.fullmatch(r"\d{13}", text):
            return parse_time(int(text))
        if re.fullmatch(r"\d{8}", text):
            text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
        elif re.fullmatch(r"\d{14}", text):
            text = f"{text[:4]}-{text[4:6]}-{text[6:8]}T{text[8:10]}:{text[10:12]}:{text[12:]}"
        elif re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}( \d{1,2}:\d{2})?", text):
            day, _, clock = text.partition(" ")
            y, m, d = day.split("-")
            text = f"{y}-{int(m):02d}-{int(d):02d}" + (f" {int(clock[:-3]):02d}{clock[-3:]}" if clock else "")
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a date/time (use yyyy-MM-dd HH:mm:ss)") from None
    else:
        raise ValueError(f"{value!r} is not a date/time")
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=CST)


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    return parse_time(value).date()


Code = Annotated[
    str, BeforeValidator(_code),
    WithJsonSchema({"type": ["string", "integer"], "description": "a code; integers are read as strings"}),
]
CodeMax = Annotated[
    str, BeforeValidator(_code), StringConstraints(max_length=32),
    WithJsonSchema({"type": ["string", "integer"], "maxLength": 32, "description": "a code (≤ 32 characters)"}),
]
Ident = Annotated[
    str, BeforeValidator(_code), StringConstraints(min_length=1, max_length=128),
    WithJsonSchema({"type": ["string", "integer"], "minLength": 1, "maxLength": 128,
                    "description": "an identifier (≤ 128 characters; integers are read as strings)"}),
]
Number = Annotated[
    float, BeforeValidator(_number),
    WithJsonSchema({"type": ["number", "string"], "description": "a number; numeric strings are accepted"}),
]
Timestamp = Annotated[
    datetime, BeforeValidator(parse_time),
    WithJsonSchema({"type": "string", "description": "yyyy-MM-dd HH:mm:ss (also yyyy-MM-dd, ISO-8601, "
                    "yyyyMMddHHmmss); naive times are China Standard Time (+08:00)"}),
]
Day = Annotated[
    date, BeforeValidator(parse_date),
    WithJsonSchema({"type": "string", "description": "yyyy-MM-dd (also yyyyMMdd or a timestamp)"}),
]


def _drop_blank(data: Any) -> Any:
    """Vendors send ``""`` or ``null`` for "no value": treat both as absent."""
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if v is not None and v != ""}
    return data


class Lenient(BaseModel):
    """Vendor payloads: unknown fields ignored, blank values absent, strings stripped."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _blank(cls, data: Any) -> Any:
        return _drop_blank(data)


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most ``limit`` characters (code points), ending in ``ellipsis`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ellipsis))].rstrip() + ellipsis

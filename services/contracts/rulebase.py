"""The rule-base topic's records (issue 12: rule-base revisions published without restart).

One partition, compacted (services/contracts/topics.py). A publish writes, in order:

* ``bundle.<revision>.<n>`` — chunk *n* (0-based) of the bundle's compressed blob
  (services.rules.bundle.pack: gzip of ``{relative path: file text}``); each at most
  :data:`CHUNK_BYTES`, so a bundle the size of the national catalogues (≈ 3,000 drugs,
  ≈ 10,000 services, ≈ 30,000 ICD-10 codes) fits Kafka's default 1 MiB record limit;
* ``manifest.<revision>`` — :class:`Manifest`: how many chunks, their SHA-256, when it was
  published, its rules with their versions and modes;
* ``active`` — :class:`Active`: the revision every worker and ingress serves, with the history
  of activations (so compaction, which keeps only the newest ``active`` record, loses none).

An activation (``POST /v1/admin/rulebase/activate``) writes only a new ``active`` record. A
reader takes the topic from the start to its end at start-up (few records: cheap even on a
broker that never compacts) and then follows it; it switches when an ``active`` record names a
revision whose manifest and chunks it holds (they are always written before it).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field

CHUNK_BYTES = 512 * 1024
ACTIVE_KEY = "active"
HISTORY_MAX = 200  # activations kept in the active record


def chunk_key(revision: str, n: int) -> str:
    return f"bundle.{revision}.{n}"


def manifest_key(revision: str) -> str:
    return f"manifest.{revision}"


def parse_key(key: str) -> tuple[str, str, int]:
    """``(kind, revision, chunk)``: kind ``bundle`` | ``manifest`` | ``active`` | ``unknown``."""
    if key == ACTIVE_KEY:
        return "active", "", -1
    kind, _, rest = key.partition(".")
    if kind == "manifest" and rest:
        return "manifest", rest, -1
    if kind == "bundle":
        revision, _, n = rest.rpartition(".")
        if revision and n.isdigit():
            return "bundle", revision, int(n)
    return "unknown", "", -1


def chunks(blob: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    return [blob[i:i + size] for i in range(0, len(blob), size)] or [b""]


def sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


class RuleMode(BaseModel):
    version: str
    mode: Literal["active", "shadow", "off"]


class Manifest(BaseModel):
    """A published bundle (``manifest.<revision>``)."""

    revision: str = Field(description="content hash of the bundle (services.rules.bundle.revision_of_files)")
    chunks: int = Field(ge=1, description="records bundle.<revision>.0 … n-1 hold the compressed blob")
    blob_bytes: int = Field(description="size of the compressed blob")
    sha256: str = Field(description="SHA-256 of the compressed blob")
    published_at: str = Field(description="ISO-8601 UTC")
    files: int = Field(description="files in the bundle")
    cases: int = Field(description="golden cases run before it was accepted")
    rules: dict[str, RuleMode] = Field(description="rule id → version and mode")
    note: str | None = Field(None, description="free text from the publisher")


class Activation(BaseModel):
    revision: str
    activated_at: str = Field(description="ISO-8601 UTC")
    action: Literal["publish", "activate"]


class Active(BaseModel):
    """The revision every process serves (``active``), with the activations before it (newest last)."""

    revision: str
    activated_at: str
    history: list[Activation] = Field(default_factory=list)


class RevisionInfo(BaseModel):
    """One stored revision as ``GET /v1/admin/rulebase/revisions`` lists it."""

    revision: str
    published_at: str | None
    active: bool
    files: int | None = None
    cases: int | None = None
    blob_bytes: int | None = None
    rules: dict[str, RuleMode] = Field(default_factory=dict)
    note: str | None = None


class Revisions(BaseModel):
    """``GET /v1/admin/rulebase/revisions``."""

    active: str = Field(description="the revision this ingress serves")
    activated_at: str | None = Field(description="when it became active (null: the packaged rule base, never published)")
    packaged: str = Field(description="the revision of the rule base shipped with the release")
    revisions: list[RevisionInfo] = Field(description="every published revision, oldest first")
    history: list[Activation] = Field(description="activations, oldest first")


class PublishResult(BaseModel):
    """``POST /v1/admin/rulebase`` and ``…/activate``."""

    revision: str
    active: bool = Field(description="whether it is now the active revision")
    activated_at: str | None = None
    cases: int | None = Field(None, description="golden cases run (publish)")
    rules: int | None = None
    unchanged: bool = Field(False, description="true when this revision was already active")

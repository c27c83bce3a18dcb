"""The rule-base feed's reading side without a broker: records in, the served revision out.

The records are exactly what the ingress writes (services/contracts/rulebase.py); the broker
path itself is covered end to end in tests/e2e/test_rulebase.py.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from services.common.rulebase_feed import SWITCHES, RevisionUnavailable, RulebaseFeed
from services.common.settings import load_settings
from services.contracts import rulebase as rb
from services.rules.bundle import bundle_files, pack, revision_of_files
from services.rules.engine import DEFAULT_DATA


def shadow_r03() -> dict[str, bytes]:
    files = dict(bundle_files(DEFAULT_DATA))
    doc = orjson.loads(files["rules/R03.json"])
    doc["rule"]["mode"] = "shadow"
    return {**files, "rules/R03.json": orjson.dumps(doc)}


def records(files: dict[str, bytes], chunk: int = 64 * 1024) -> tuple[str, list[tuple[bytes, bytes]]]:
    """What a publish writes: chunks, manifest, active (small chunks: several records)."""
    revision = revision_of_files(files)
    blob = pack(files)
    parts = rb.chunks(blob, chunk)
    out = [(rb.chunk_key(revision, n).encode(), p) for n, p in enumerate(parts)]
    manifest = rb.Manifest(revision=revision, chunks=len(parts), blob_bytes=len(blob), sha256=rb.sha256(blob),
                           published_at="2026-12-02T10:00:00+00:00", files=len(files), cases=238,
                           rules={"R03": rb.RuleMode(version="1.0.0", mode="shadow")})
    out.append((rb.manifest_key(revision).encode(), manifest.model_dump_json().encode()))
    active = rb.Active(revision=revision, activated_at="2026-12-02T10:00:01+00:00",
                       history=[rb.Activation(revision=revision, activated_at="2026-12-02T10:00:01+00:00",
                                              action="publish")])
    out.append((rb.ACTIVE_KEY.encode(), active.model_dump_json().encode()))
    return revision, out


@pytest.fixture
def feed() -> RulebaseFeed:
    return RulebaseFeed(load_settings({}), "test")


def test_reading_the_records_switches_to_the_active_revision(feed: RulebaseFeed) -> None:
    packaged = feed.current.revision
    assert feed.current.source == "packaged" and feed.current.activated_at is None
    revision, recs = records(shadow_r03())
    assert len(recs) > 3  # several chunks
    seen = []
    feed.listeners.append(lambda served: seen.append(served.revision))
    for key, value in recs:
        feed._take(key, value)
    asyncio.run(feed._switch())
    assert feed.current.revision == revision != packaged and seen == [revision]
    assert feed.current.engine.by_id["R03"].mode == "shadow"
    listing = feed.revisions()
    assert listing.active == revision and listing.packaged == packaged
    assert [(r.revision, r.active) for r in listing.revisions] == [(revision, True)]
    assert [h.action for h in listing.history] == ["publish"]


def test_a_corrupt_or_incomplete_revision_is_not_served(feed: RulebaseFeed) -> None:
    packaged = feed.current.revision
    revision, recs = records(shadow_r03())
    failed = SWITCHES.labels("failed")._value.get()
    # A chunk altered on the way: the manifest's SHA-256 does not match.
    for key, value in recs:
        feed._take(key, value[:-1] + b"x" if key == rb.chunk_key(revision, 1).encode() else value)
    with pytest.raises(RevisionUnavailable, match="SHA-256"):
        feed.files_of(revision)
    asyncio.run(feed._switch())
    assert feed.current.revision == packaged and SWITCHES.labels("failed")._value.get() == failed + 1
    # A chunk missing.
    other = RulebaseFeed(load_settings({}), "test")
    for key, value in recs:
        if key != rb.chunk_key(revision, 0).encode():
            other._take(key, value)
    with pytest.raises(RevisionUnavailable, match=r"chunk\(s\) \[0\] missing"):
        other.files_of(revision)
    with pytest.raises(RevisionUnavailable, match="not stored"):
        other.files_of("rb-0000000000000000")


def test_an_unreadable_record_is_skipped(feed: RulebaseFeed) -> None:
    assert feed._take(rb.manifest_key("rb-1").encode(), b"{not json") is False
    assert feed._take(b"something.else", b"{}") is False
    assert feed.manifests == {} and feed.active is None

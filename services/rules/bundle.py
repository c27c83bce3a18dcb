"""A rule-base bundle and its revision id (issue 12: 两库 revisions).

A bundle is a directory laid out like the packaged rule base (``services/data``):
``rules/R*.json`` (rules with their parameters, region overrides and effective dates) and
``kb/*.json`` (the catalogues). Its revision id is a content hash, so the same content always
has the same id wherever it was built, and any change — one threshold, one catalogue row, one
rule's mode — is a new revision.

The hash covers each JSON file's *parsed* content (keys sorted, no whitespace), so reformatting a
file does not change the revision; file names are part of it (relative POSIX paths, sorted).
Pure apart from reading the given directory: no clock, no network.
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Iterable, Mapping

import orjson

#: The sub-directories of a bundle that belong to its content (everything else is ignored).
SECTIONS = ("rules", "kb")
#: Hex digits kept from the SHA-256 digest (64 bits: collisions are not a practical concern
#: for a few thousand revisions) behind the prefix.
DIGITS = 16
PREFIX = "rb-"


def _canonical(data: bytes) -> bytes:
    return orjson.dumps(orjson.loads(data), option=orjson.OPT_SORT_KEYS)


def bundle_files(data_dir: pathlib.Path | str) -> list[tuple[str, bytes]]:
    """The bundle's files as ``(relative posix path, raw bytes)``, sorted by path."""
    root = pathlib.Path(data_dir)
    out: list[tuple[str, bytes]] = []
    for section in SECTIONS:
        base = root / section
        if not base.is_dir():
            continue
        for path in sorted(base.glob("*.json")):
            out.append((f"{section}/{path.name}", path.read_bytes()))
    return sorted(out)


def revision_of_files(files: Iterable[tuple[str, bytes]] | Mapping[str, bytes]) -> str:
    """The revision id of a bundle given as ``{relative path: raw JSON bytes}``."""
    items = files.items() if isinstance(files, Mapping) else files
    digest = hashlib.sha256()
    for rel, data in sorted(items):
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(_canonical(data))
        digest.update(b"\n")
    return PREFIX + digest.hexdigest()[:DIGITS]


def revision_of(data_dir: pathlib.Path | str) -> str:
    """The revision id of the bundle in ``data_dir`` (``rules/`` and ``kb/``)."""
    return revision_of_files(bundle_files(data_dir))

"""A rule-base bundle and its revision id (issue 12: 两库 revisions).

A bundle is a directory laid out like the packaged rule base (``services/data``):
``rules/R*.json`` (rules with their parameters, region overrides and effective dates) and
``kb/*.json`` (the catalogues). Its revision id is a content hash, so the same content always
has the same id wherever it was built, and any change — one threshold, one catalogue row, one
rule's mode — is a new revision.

The hash covers each JSON file's *parsed* content (keys sorted, no whitespace), so reformatting a
file does not change the revision; file names are part of it (relative POSIX paths, sorted).
Pure apart from reading the given directory: no clock, no network. Below the revision: what
``POST /v1/admin/rulebase`` accepts (a JSON object of files, or a tar.gz of the directory) and the
compressed blob the rule-base topic carries (services/contracts/rulebase.py chunks it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pathlib
import re
import tarfile
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


# -- uploads and transport ---------------------------------------------------------------
#: The files a bundle may hold (anything else in an upload is refused, naming the file).
FILE_RE = re.compile(r"^(rules/R\d{2,3}|kb/[a-z_]+)\.json$")


class BundleFormatError(ValueError):
    """An upload that is not a bundle (unknown file, not UTF-8 JSON, a path outside the bundle, …)."""


def check_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The bundle's files, each path checked (``rules/R*.json``, ``kb/<table>.json``) and valid UTF-8 JSON."""
    if not files:
        raise BundleFormatError("the bundle holds no file (expected rules/R*.json and kb/<table>.json)")
    out = {}
    for rel, data in sorted(files.items()):
        if not FILE_RE.match(rel):
            raise BundleFormatError(f"{rel}: not a bundle file (rules/R<nn>.json or kb/<table>.json)")
        try:
            orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BundleFormatError(f"{rel}: not valid JSON ({exc})") from None
        out[rel] = bytes(data)
    return out


def files_from_json(doc: object) -> dict[str, bytes]:
    """An upload as one JSON object ``{"rules/R01.json": <the file's JSON> | "<its text>", …}``."""
    if not isinstance(doc, dict):
        raise BundleFormatError('expected a JSON object {"rules/R01.json": {...}, "kb/drugs.json": {...}, …}')
    files = {}
    for rel, value in doc.items():
        files[str(rel)] = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return check_files(files)


def files_from_tar(blob: bytes, max_bytes: int = 512 * 1024 * 1024) -> dict[str, bytes]:
    """An upload as a tar archive (gzip-compressed or not) of the bundle directory: ``rules/…`` and ``kb/…``,
    at the top or under one directory (``mybundle/rules/R01.json``)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            total = sum(m.size for m in members)
            if total > max_bytes:
                raise BundleFormatError(f"the archive unpacks to {total} bytes, more than {max_bytes}")
            raw = {}
            for m in members:
                name = m.name.lstrip("./")
                if pathlib.PurePosixPath(name).name.startswith("."):
                    continue  # editor and OS droppings (.DS_Store, ._R01.json)
                handle = tar.extractfile(m)
                if handle is not None:
                    raw[name] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleFormatError(f"not a tar or tar.gz archive ({exc})") from None
    tops = {n.split("/", 1)[0] for n in raw}
    if len(tops) == 1 and not tops & set(SECTIONS):  # one enclosing directory
        raw = {n.split("/", 1)[1]: d for n, d in raw.items() if "/" in n}
    raw = {n: d for n, d in raw.items() if n.split("/", 1)[0] in SECTIONS}
    return check_files(raw)


def tar_of_files(files: Mapping[str, bytes]) -> bytes:
    """A tar.gz of the bundle (what ``presettle rules publish`` uploads)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def pack(files: Mapping[str, bytes]) -> bytes:
    """One compressed blob of a bundle (the rule-base topic carries it in chunks): gzip of
    ``{relative path: file text}`` as JSON."""
    doc = {rel: data.decode() for rel, data in sorted(files.items())}
    return gzip.compress(orjson.dumps(doc), compresslevel=6, mtime=0)


def unpack(blob: bytes) -> dict[str, bytes]:
    """The files of :func:`pack`'s blob."""
    doc = orjson.loads(gzip.decompress(blob))
    return {rel: text.encode() for rel, text in doc.items()}

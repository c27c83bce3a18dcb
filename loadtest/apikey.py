"""How the load tools name the API key and its institution: one variable, ``PRESETTLE_API_KEY``.

    PRESETTLE_API_KEY=KEY:INSTITUTION              one key and the institution it belongs to
    PRESETTLE_API_KEY=KEY1:INST1,KEY2:INST2        several (Locust spreads its users over them)
    PRESETTLE_API_KEY=KEY                          plain key: the development keys know their
                                                   institution (dev-key-h1 → H1, dev-key-h2 → H2),
                                                   any other key is taken to be of H1

The service answers 403 when the events name another institution than the key's, and the
tools then stop with a message saying what to set. Shared by ``bench_e2e`` and the locustfile
(standard library only: it runs on load-generator machines too).
"""

from __future__ import annotations

ENV = "PRESETTLE_API_KEY"
DEFAULT = "dev-key-h1"
DEFAULT_INSTITUTION = "H1"
# The service's development keys (services/common/settings.py, documented in README.md).
DEV_KEYS = {"dev-key-h1": "H1", "dev-key-h2": "H2"}
# Variables an earlier version read; now ignored, said so once.
RETIRED = ("PRESETTLE_INSTITUTION", "PRESETTLE_BENCH_INSTITUTION")


class KeyFormatError(ValueError):
    """PRESETTLE_API_KEY (or --api-key) is not KEY[:INSTITUTION][,KEY[:INSTITUTION]…]."""


def parse_api_keys(raw: str, name: str = ENV) -> list[tuple[str, str]]:
    """``"k1:H1,k2"`` → ``[("k1", "H1"), ("k2", <its institution>)]`` (see the module docstring)."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, institution = part.partition(":")
        key, institution = key.strip(), institution.strip()
        if not key or (sep and not institution):
            raise KeyFormatError(f"{name}: {part[:4]}… is not KEY or KEY:INSTITUTION")
        pairs.append((key, institution or DEV_KEYS.get(key, DEFAULT_INSTITUTION)))
    if not pairs:
        raise KeyFormatError(f"{name} holds no key: set {name}=KEY:INSTITUTION")
    return pairs


def retired_variables(env: dict[str, str]) -> list[str]:
    """Warnings for variables the tools no longer read."""
    return [f"{v} is no longer read: name the institution in {ENV}=KEY:INSTITUTION" for v in RETIRED if env.get(v)]


def rejection_message(status: int, body: str, key: str, institution: str, tool: str) -> str:
    """What to tell the user when the service refuses the key (401) or the institution (403)."""
    shown = key[:4] + "…" if len(key) > 4 else key
    if status == 401:
        why = f"the service does not know the API key {shown!r} (401)"
        fix = (f"set {ENV}=KEY:INSTITUTION with a key from the service's PRESETTLE_API_KEYS "
               f"(development: {ENV}=dev-key-h1:H1)")
    else:
        why = f"the service refused events of institution {institution} for key {shown!r} (403)"
        fix = f"set {ENV}=KEY:INSTITUTION with the institution that key belongs to"
    detail = body.strip().replace("\n", " ")[:200]
    return f"{tool}: stopped: {why}: {detail}\n{tool}: {fix}"

"""What ``PRESETTLE_ENV=production`` refuses as a secret: placeholders, short keys, shared keys.

Pure: no environment, no files. ``services/common/settings.py`` calls
:func:`check_production_secrets` once it has parsed the keys; each refusal names
the variable to fix. ``tests/test_secrets_policy.py`` checks that every key value
shipped in ``deploy/`` (the Secret, ``.env.example``) is refused here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MIN_SECRET_LEN = 24

# Values that mark a key as a placeholder or a development key, wherever they appear
# (lower-cased). Everything the repository ships as an example key matches one of these.
PLACEHOLDER_PREFIXES = ("dev-", "change-me", "changeme", "replace-me", "replaceme", "example", "placeholder")
PLACEHOLDER_MARKERS = ("change-me", "changeme", "replace-me", "replaceme", "placeholder", "presettle-dev",
                       "00000000", "xxxxxxxx")


class WeakSecretError(ValueError):
    """A production secret is a placeholder, too short, or shared between roles."""


def weakness(value: str) -> str | None:
    """Why ``value`` is unfit as a production secret, or None when it passes."""
    lowered = value.strip().lower()
    if lowered.startswith(PLACEHOLDER_PREFIXES) or any(m in lowered for m in PLACEHOLDER_MARKERS):
        return "is a placeholder or development value"
    if len(value.strip()) < MIN_SECRET_LEN:
        return f"is shorter than {MIN_SECRET_LEN} characters"
    return None


def check_production_secrets(
    api_keys: Mapping[str, str],
    admin_keys: Iterable[str],
    pseudonym_key: str,
    dev_pseudonym_key: str,
) -> None:
    """Raise :class:`WeakSecretError` naming the variable at fault (first problem found)."""
    for key, institution in api_keys.items():
        why = weakness(key)
        if why:
            raise WeakSecretError(f"PRESETTLE_API_KEYS: the key for institution {institution} {why}; "
                                  "production needs random keys (e.g. `openssl rand -hex 24`)")
    admin = frozenset(admin_keys)
    for n, key in enumerate(sorted(admin), 1):
        why = weakness(key)
        if why:
            raise WeakSecretError(f"PRESETTLE_ADMIN_KEYS: admin key #{n} {why}; "
                                  "production needs random keys (e.g. `openssl rand -hex 24`)")
    shared = admin & set(api_keys)
    if shared:
        institutions = sorted(api_keys[k] for k in shared)
        raise WeakSecretError("PRESETTLE_ADMIN_KEYS: a key is also an institution key in PRESETTLE_API_KEYS "
                              f"(institution {', '.join(institutions)}); use separate keys")
    if pseudonym_key == dev_pseudonym_key:
        raise WeakSecretError("PRESETTLE_PSEUDONYM_KEY: the development pseudonym key is refused in production")
    why = weakness(pseudonym_key)
    if why:
        raise WeakSecretError(f"PRESETTLE_PSEUDONYM_KEY {why}; set a long random secret and keep it stable")
    if pseudonym_key in admin or pseudonym_key in api_keys:
        raise WeakSecretError("PRESETTLE_PSEUDONYM_KEY: the same value is used as an API key; use a separate secret")


# Secrets a deployment may hand over as files (docker/compose secrets, mounted Kubernetes
# Secrets): ``NAME_FILE=/run/secrets/name`` is read as ``NAME``.
SECRET_VARIABLES = ("PRESETTLE_API_KEYS", "PRESETTLE_ADMIN_KEYS", "PRESETTLE_PSEUDONYM_KEY",
                    "PRESETTLE_KAFKA_SASL_PASSWORD", "PRESETTLE_STAFF_KEYS", "PRESETTLE_DATABASE_URL")


def read_secret_files(env: Mapping[str, str], names: Iterable[str] = SECRET_VARIABLES) -> dict[str, str]:
    """``env`` with every ``NAME_FILE`` replaced by the file's content as ``NAME``.

    The one function here that reads files: called by settings before anything is parsed.
    Setting both ``NAME`` and ``NAME_FILE`` is refused (which one wins would be a guess).
    """
    out = dict(env)
    for name in names:
        path = out.pop(f"{name}_FILE", "").strip()
        if not path:
            continue
        if out.get(name, "").strip():
            raise WeakSecretError(f"{name} and {name}_FILE are both set; set only one")
        try:
            with open(path, encoding="utf-8") as fh:
                out[name] = fh.read().strip()
        except OSError as exc:
            raise WeakSecretError(f"{name}_FILE={path!r} cannot be read ({exc.strerror or exc})") from None
    return out

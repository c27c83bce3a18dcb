"""``presettle rules …``: validate a rule-base bundle, publish it, list revisions, activate one.

    presettle rules validate DIR
    presettle rules publish DIR [--url URL] [--admin-key KEY] [--no-activate] [--note TEXT]
    presettle rules revisions [--url URL] [--admin-key KEY] [--json]
    presettle rules activate REV [--url URL] [--admin-key KEY]

``DIR`` is a rule-base directory laid out like the packaged one (``rules/R*.json``,
``kb/*.json``). ``validate`` runs locally what ``POST /v1/admin/rulebase`` runs before it
accepts a bundle: the start-up loader and every golden case of every rule. The others talk to
a running ingress (``--url``, default ``$PRESETTLE_URL`` or ``http://127.0.0.1:8000``) with a
bureau admin key (``--admin-key``, default ``$PRESETTLE_ADMIN_KEY``, else the development key).
Exit codes: 0 done; 1 the bundle was rejected (the failing rules and cases are printed) or the
service refused; 2 a usage error or the service could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

DEFAULT_URL = "http://127.0.0.1:8000"
DEV_ADMIN_KEY = "dev-admin-key"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


def _files(directory: str) -> dict[str, bytes]:
    from services.rules.bundle import BundleFormatError, bundle_files, check_files

    root = pathlib.Path(directory)
    if not (root / "rules").is_dir():
        raise SystemExit(_usage(f"{directory}: no rules/ directory (expected rules/R*.json and kb/*.json)"))
    try:
        return check_files(dict(bundle_files(root)))
    except BundleFormatError as exc:
        raise SystemExit(_usage(str(exc))) from None


def _usage(msg: str) -> int:
    _say(f"[presettle rules] {msg}")
    return 2


def _print_failures(failures: list[dict[str, Any]]) -> None:
    for f in failures:
        where = f.get("rule_id") or f.get("file") or "bundle"
        case = f" case {f['case']} ({f.get('name', '')})" if f.get("case") is not None else ""
        for err in f.get("errors", []):
            _say(f"  {where}{case}: {err}")


# -- validate ---------------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> int:
    from services.rules.bundle import revision_of_files
    from services.rules.golden import BundleRejected, check_bundle

    files = _files(args.dir)
    t0 = time.perf_counter()
    try:
        engine, cases = check_bundle(files)
    except BundleRejected as exc:
        _say(f"REJECTED: {exc}")
        _print_failures(exc.failures)
        return 1
    modes: dict[str, list[str]] = {}
    for rule in engine.rules:
        modes.setdefault(rule.mode, []).append(rule.id)
    print(json.dumps({"revision": revision_of_files(files), "files": len(files), "rules": len(engine.rules),
                      "cases": cases, "modes": modes, "seconds": round(time.perf_counter() - t0, 2)},
                     ensure_ascii=False))
    _say(f"OK: {len(engine.rules)} rules, {cases} golden cases hold; revision {revision_of_files(files)}")
    return 0


# -- the service ------------------------------------------------------------------------------
def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("PRESETTLE_URL") or DEFAULT_URL,
                   help=f"the ingress (default: $PRESETTLE_URL or {DEFAULT_URL})")
    p.add_argument("--admin-key", default=os.environ.get("PRESETTLE_ADMIN_KEY") or DEV_ADMIN_KEY,
                   help="a bureau admin key (default: $PRESETTLE_ADMIN_KEY, else the development key)")


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    import httpx

    try:
        headers = {"X-API-Key": args.admin_key, **kwargs.pop("headers", {})}
        r = httpx.request(method, args.url.rstrip("/") + path, headers=headers, timeout=120, **kwargs)
    except httpx.HTTPError as exc:
        raise SystemExit(_usage(f"cannot reach {args.url}: {exc}")) from None
    try:
        body = r.json()
    except ValueError:
        body = {"message": r.text[:500]}
    if r.status_code in (401, 403):
        raise SystemExit(_usage(f"{r.status_code}: {body.get('message', '')} (set --admin-key or PRESETTLE_ADMIN_KEY)"))
    return r.status_code, body


def _refused(status: int, body: Any) -> int:
    _say(f"REFUSED ({status}): {body.get('message', body)}")
    _print_failures(body.get("failures") or [])
    return 1


def _publish(args: argparse.Namespace) -> int:
    from services.rules.bundle import revision_of_files, tar_of_files

    files = _files(args.dir)
    blob = tar_of_files(files)
    _say(f"publishing {len(files)} files ({len(blob)} bytes compressed), revision {revision_of_files(files)} …")
    params: dict[str, str] = {"activate": "false" if args.no_activate else "true"}
    if args.note:
        params["note"] = args.note
    status, body = _call(args, "POST", "/v1/admin/rulebase", content=blob, params=params,
                         headers={"Content-Type": "application/gzip"})
    if status != 200:
        return _refused(status, body)
    print(json.dumps(body, ensure_ascii=False))
    state = "active" if body.get("active") else "stored (not active)"
    _say(f"OK: revision {body['revision']} {state}; {body.get('cases')} golden cases held")
    return 0


def _revisions(args: argparse.Namespace) -> int:
    status, body = _call(args, "GET", "/v1/admin/rulebase/revisions")
    if status != 200:
        return _refused(status, body)
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    print(f"active:   {body['active']} (since {body['activated_at'] or 'start: the packaged rule base'})")
    print(f"packaged: {body['packaged']}")
    for rev in body["revisions"]:
        shadow = sorted(r for r, m in rev.get("rules", {}).items() if m["mode"] == "shadow")
        off = sorted(r for r, m in rev.get("rules", {}).items() if m["mode"] == "off")
        mark = "*" if rev["active"] else " "
        print(f"{mark} {rev['revision']}  published {rev['published_at']}  rules {len(rev.get('rules', {}))}"
              f"{'  shadow ' + ','.join(shadow) if shadow else ''}{'  off ' + ','.join(off) if off else ''}"
              f"{'  — ' + rev['note'] if rev.get('note') else ''}")
    for act in body["history"][-10:]:
        print(f"  {act['activated_at']}  {act['action']:<8}  {act['revision']}")
    return 0


def _activate(args: argparse.Namespace) -> int:
    status, body = _call(args, "POST", "/v1/admin/rulebase/activate", json={"revision": args.revision})
    if status != 200:
        return _refused(status, body)
    print(json.dumps(body, ensure_ascii=False))
    _say(f"OK: revision {body['revision']} {'active' if body.get('active') else 'written (not yet served here)'}")
    return 0


def add_rules(sub: Subparsers) -> None:
    p = sub.add_parser("rules", help="rule-base bundles: validate, publish, revisions, activate",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    rs = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    v = rs.add_parser("validate", help="load DIR and run every golden case (what a publish checks)")
    v.add_argument("dir", metavar="DIR")
    v.set_defaults(handler=_validate)
    pub = rs.add_parser("publish", help="validate DIR on the service, store it and activate it")
    pub.add_argument("dir", metavar="DIR")
    _client_args(pub)
    pub.add_argument("--no-activate", action="store_true", help="store the revision without activating it")
    pub.add_argument("--note", help="free text kept with the revision")
    pub.set_defaults(handler=_publish)
    rv = rs.add_parser("revisions", help="the stored revisions and activations")
    _client_args(rv)
    rv.add_argument("--json", action="store_true", help="the raw answer")
    rv.set_defaults(handler=_revisions)
    act = rs.add_parser("activate", help="make a stored revision active (roll back or forward)")
    act.add_argument("revision", metavar="REV")
    _client_args(act)
    act.set_defaults(handler=_activate)

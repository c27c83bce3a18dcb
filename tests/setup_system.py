"""Install the Debian packages the test suite needs, when they are missing.

    python tests/setup_system.py          # `make test` runs this before pytest

The suite drives two real programs from Debian's packages:

* ``prometheus`` — ``tests/ops/test_prometheus_scrape.py`` scrapes a running stack;
* ``chromium``   — ``tests/ops/test_dashboard_browser.py`` drives the live page headless;
* ``stunnel4``   — ``tests/e2e/test_kafka_tls.py`` puts a TLS terminator in front of the broker;
* ``postgresql`` — ``tests/decisionlog`` runs the decision-log store tests on a throwaway cluster
  (initdb/pg_ctl under a temporary directory, tests/decisionlog/pg.py) as well as on SQLite.

This script installs whichever is missing (``apt-get update`` once, then
``apt-get install -y --no-install-recommends``), prints what it did, and always
exits 0: without root or apt the tests that need a package skip with a reason.
``PRESETTLE_SKIP_SYSTEM_SETUP=1`` turns it off (e.g. on a developer laptop).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

# Debian package -> the program it provides (what the tests look for).
PACKAGES: dict[str, str] = {
    "prometheus": "/usr/bin/prometheus",
    "chromium": "/usr/bin/chromium",
    "stunnel4": "/usr/bin/stunnel4",
    "postgresql": "/usr/lib/postgresql/*/bin/initdb",  # any major version Debian ships
}
# Extra packages that make the browser test's output readable (CJK glyphs in the screenshot).
OPTIONAL: dict[str, str] = {
    "fonts-noto-cjk": "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
}


def say(msg: str) -> None:
    print(f"[setup_system] {msg}", flush=True)


def missing(table: dict[str, str]) -> list[str]:
    return [pkg for pkg, path in table.items() if not glob.glob(path)]


def run(cmd: list[str], timeout: float) -> bool:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    say("$ " + " ".join(cmd))
    try:
        proc = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        say(f"failed: {exc}")
        return False
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-8:])
        say(f"exit code {proc.returncode}:\n{tail}")
        return False
    return True


def main() -> int:
    if os.environ.get("PRESETTLE_SKIP_SYSTEM_SETUP"):
        say("PRESETTLE_SKIP_SYSTEM_SETUP is set: nothing installed")
        return 0
    required = missing(PACKAGES)
    wanted = required + missing(OPTIONAL)
    if not wanted:
        say("prometheus, chromium, stunnel4 and postgresql are present: nothing to do")
        return 0
    say(f"missing: {', '.join(wanted)}")
    apt = shutil.which("apt-get")
    if apt is None:
        say("apt-get is not available: the tests that need these packages will skip")
        return 0
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        say("not root: cannot install; the tests that need these packages will skip")
        return 0
    if not run([apt, "update", "-q"], timeout=600):
        say("apt-get update failed: the tests that need these packages will skip")
        return 0
    install = [apt, "install", "-y", "-q", "--no-install-recommends"]
    if not run(install + wanted, timeout=1500):
        # One package may be unavailable; try the required ones one by one.
        for pkg in required:
            run(install + [pkg], timeout=1500)
    for pkg, path in {**PACKAGES, **OPTIONAL}.items():
        state = "present" if glob.glob(path) else "STILL MISSING (its tests will skip)"
        say(f"{pkg}: {path} {state}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # never fail the build from here
        say(f"unexpected error, continuing: {exc!r}")
        sys.exit(0)

"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, initdb + pg_ctl under a temp dir.

The server refuses to run as root, so as root the cluster is made and run as the ``postgres``
system user (which Debian's package creates). Trust authentication on a private port and a
socket in the cluster's directory: nothing outside the test can reach it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from services.common.broker import free_port


def bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Cluster:
    def __init__(self) -> None:
        bin_ = bindir()
        if bin_ is None:
            raise FileNotFoundError("Debian's postgresql is not installed (tests/setup_system.py installs it)")
        self.bin = bin_
        self.dir = Path(tempfile.mkdtemp(prefix="presettle-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user: str | None = None
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       cwd=self.dir)

    def start(self) -> Cluster:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "server.log"), "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", timeout=30)
        except (subprocess.SubprocessError, OSError):
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)

"""A throwaway PostgreSQL cluster for the test suite: ``initdb`` and ``pg_ctl`` in a temporary
folder, listening on a free port of 127.0.0.1 (and a unix socket inside that folder).

PostgreSQL refuses to run as root; when the tests run as root (CI does), the cluster runs
as the unprivileged system user ``userprops-pg``, created on first use.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from serverproc import free_port

USER = "userprops-pg"
SEARCH_PATH = ("/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")


def pg_bin(tool: str) -> str:
    """The path of a PostgreSQL server program, from PATH or Debian's folder."""
    found = shutil.which(tool) or shutil.which(tool, path=os.pathsep.join(SEARCH_PATH))
    if found is None:
        raise RuntimeError(
            f"{tool} not found: install PostgreSQL 15 (apt-get install postgresql-15) "
            "or set USERPROPS_TEST_POSTGRES_DSN to a server the tests may create databases on"
        )
    return found


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
        )
        return pwd.getpwnam(USER)


class Cluster:
    """One PostgreSQL server in its own temporary folder; :meth:`stop` and :meth:`start`
    may be called repeatedly (the port stays the same)."""

    def __init__(self) -> None:
        as_root = os.geteuid() == 0
        # As root, under /tmp: the cluster's user must reach the folder whatever TMPDIR is.
        folder = "/tmp" if as_root else None  # noqa: S108 (mkdtemp: private and unique)
        self.root = Path(tempfile.mkdtemp(prefix="userprops-pg-", dir=folder))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if as_root:
            account = _ensure_user()
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", USER, "--"]
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, capture_output=True, cwd=self.root, timeout=60
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c max_connections=200"
            " -c deadlock_timeout=100ms"
        )
        log = str(self.root / "server.log")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


class Databases:
    """Empty databases on a server, one per test.

    A database a test is done with is emptied (its sessions ended, its schema dropped and
    made again) and handed to a later test: ``CREATE DATABASE`` checkpoints the whole
    server, which grows slow as the suite writes.
    """

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._made: list[str] = []
        self._free: list[str] = []

    def _execute(self, sql: str, dsn: str | None = None) -> None:
        with psycopg.connect(dsn or self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def _url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.admin_dsn)._replace(path=f"/{name}"))

    def create(self) -> str:
        if self._free:
            return self._url(self._free.pop())
        name = f"userprops_test_{os.getpid()}_{len(self._made) + 1}"
        self._execute(f'DROP DATABASE IF EXISTS "{name}"')
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        self._made.append(name)
        return self._url(name)

    def release(self, url: str) -> None:
        """Empty a database that :meth:`create` gave, for a later test."""
        name = urlsplit(url).path.lstrip("/")
        self._execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        self._execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public", url)
        self._free.append(name)

    def close(self) -> None:
        """Drop every database made."""
        for name in self._made:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()
        self._free.clear()

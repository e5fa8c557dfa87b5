"""A throwaway PostgreSQL cluster: ``initdb`` and ``pg_ctl`` in a temporary folder, listening
on a free port of 127.0.0.1 (and a unix socket inside that folder), removed by :meth:`destroy`.

The benchmark runs it durable (``fsync`` and ``full_page_writes`` on, PostgreSQL's defaults)
with :data:`TUNED`'s memory and WAL settings; the test suite runs it with both off, for
speed. PostgreSQL refuses to run as root; as root, the cluster runs as the unprivileged
system user ``userprops-pg``, created on first use.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "userprops-pg"
# What --postgres runs the benchmark's durable cluster with: docs/backends.md's advice for
# a server taking a steady stream of writes. With the defaults (128 MB of shared buffers,
# 1 GB of WAL between checkpoints), PostgreSQL checkpointed every 10 s under the write
# scenario and logged "checkpoints are occurring too frequently": each checkpoint makes
# the next change of every page a full-page image in the WAL.
TUNED = ("shared_buffers=2GB", "max_wal_size=8GB")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ensure_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        # Several test workers may get here at once on a fresh machine: one useradd wins,
        # the others fail with "already exists" (9); the account is there either way.
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=False,
            capture_output=True,
        )
        try:
            return pwd.getpwnam(USER)
        except KeyError:
            raise RuntimeError(f"useradd {USER} failed: {made.stderr.decode().strip()}") from None


class Cluster:
    """One PostgreSQL server in its own temporary folder; :meth:`stop` and :meth:`start`
    may be called repeatedly (the port stays the same). ``durable=False`` turns ``fsync``
    and ``full_page_writes`` off (tests only). ``cpus`` (a ``taskset`` CPU list) pins the
    server and every backend it starts to those CPUs. With ``primary`` (a running
    cluster), the cluster is a streaming-replication standby of it, copied with
    ``pg_basebackup -R`` instead of made by ``initdb``."""

    def __init__(
        self, *, durable: bool = False, cpus: str | None = None, primary: Cluster | None = None
    ) -> None:
        self.durable = durable
        self.cpus = cpus
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
        if primary is not None:
            self._run(
                pg_bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream",
                "-c", "fast", *([] if durable else ["--no-sync"]),
            )  # fmt: skip
            return
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-instructions", *([] if durable else ["--no-sync"]),
        )  # fmt: skip

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, *args], check=True, capture_output=True, cwd=self.root, timeout=60
        )

    def start(self, *settings: str) -> None:
        """Start the server; ``settings`` (``name=value``, no spaces or shell characters)
        are given to it as ``-c`` options, for this start only."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            " -c max_connections=200 -c deadlock_timeout=100ms"
        )
        options += "".join(f" -c {setting}" for setting in settings)
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        log = str(self.root / "server.log")
        pinned = ["taskset", "-c", self.cpus] if self.cpus else []
        self._run(
            *pinned, pg_bin("pg_ctl"), "-D", str(self.data), "-l", log, "-o", options, "-w", "start"
        )

    def promote(self) -> None:
        """Make a standby the primary; returns once it accepts writes."""
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-w", "promote")

    def postmaster_pid(self) -> int | None:
        """The server's process id, from its pid file; None when it has none."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

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

"""PostgreSQL for the test suite: the throwaway :class:`Cluster` (shared with the benchmark,
run here with ``fsync`` off) and :class:`Databases`, one empty database per test."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from bench.pgcluster import Cluster

__all__ = ["Cluster", "Databases", "freeze", "kill", "thaw"]


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
            conn.execute(sql)

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


def _stat(pid: int) -> tuple[str, int] | None:
    """The state and parent of process ``pid``, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] == parent:
            found.append(int(entry.name))
    return found


def freeze(cluster: Cluster) -> list[int]:
    """SIGSTOP the server and every backend, as a partition looks from the client: the
    sockets stay open and the kernel acknowledges, but nothing answers. The postmaster is
    stopped first, so it starts no process that the list misses. Returns the pids."""
    postmaster = cluster.postmaster_pid()
    assert postmaster is not None, "the cluster is not running"
    os.kill(postmaster, signal.SIGSTOP)
    pids = [postmaster, *_children(postmaster)]
    for pid in pids[1:]:
        os.kill(pid, signal.SIGSTOP)
    return pids


def thaw(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def kill(cluster: Cluster, timeout: float = 10.0) -> None:
    """SIGKILL the server and every backend at once (frozen first, so none runs on after
    the others died), as a lost machine; returns once every one is gone."""
    pids = freeze(cluster)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any((stat := _stat(pid)) and stat[0] != "Z" for pid in pids):
        assert time.monotonic() < deadline, "the cluster's processes did not die"
        time.sleep(0.01)

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

from userprops.storage import open_storage

__all__ = ["Cluster", "Databases", "freeze", "kill", "thaw"]


# What makes two migrated databases alike: the schema (columns, indexes, functions, table
# options) and the migrations recorded. Data is not in it: a database handed out again as
# migrated has every table but schema_migrations emptied first.
_FINGERPRINT = """
SELECT md5(concat_ws('|',
  (SELECT string_agg(concat_ws(',', table_name, column_name, data_type, column_default,
                               is_nullable), ';' ORDER BY table_name, ordinal_position)
   FROM information_schema.columns WHERE table_schema = 'public'),
  (SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes
   WHERE schemaname = 'public'),
  (SELECT string_agg(p.proname || md5(p.prosrc), ';' ORDER BY p.proname, p.oid)
   FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace),
  (SELECT string_agg(c.relname || coalesce(array_to_string(c.reloptions, ','), ''), ';'
                     ORDER BY c.relname)
   FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace),
  (SELECT string_agg(conname || pg_get_constraintdef(oid), ';' ORDER BY conname)
   FROM pg_constraint WHERE connamespace = 'public'::regnamespace),
  (SELECT string_agg(version::text || name, ';' ORDER BY version) FROM schema_migrations)
))
"""
_TABLES = """
SELECT string_agg(format('%I', tablename), ', ') FROM pg_tables
WHERE schemaname = 'public' AND tablename <> 'schema_migrations'
"""


class Databases:
    """Databases on a server, one per test: empty, or already migrated.

    A database a test is done with is handed to a later test: ``CREATE DATABASE``
    checkpoints the whole server, which grows slow as the suite writes. If its schema is
    exactly what the migrations make (:data:`_FINGERPRINT`, compared with a database
    migrated for the purpose), its tables are emptied and it waits for a test that wants
    a migrated database, which then finds no migration to run (the storage, unit and
    segment tests: 102 s before, 93 s with it). Otherwise (a migration test left it
    half-migrated, or a test changed the schema) its schema is dropped and made again.
    """

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._made: list[str] = []
        self._free: list[str] = []
        self._free_migrated: list[str] = []
        self._migrated_print: str | None = None

    def _execute(self, sql: str, dsn: str | None = None) -> None:
        with psycopg.connect(dsn or self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql)

    def _url(self, name: str) -> str:
        return urlunsplit(urlsplit(self.admin_dsn)._replace(path=f"/{name}"))

    def _new(self) -> str:
        name = f"userprops_test_{os.getpid()}_{len(self._made) + 1}"
        self._execute(f'DROP DATABASE IF EXISTS "{name}"')
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        self._made.append(name)
        return name

    def create(self, *, migrated: bool = False) -> str:
        """An empty database's URL; with ``migrated``, one whose schema is every
        migration's (tables empty), which ``migrate()`` then leaves as it is."""
        if migrated:
            if self._free_migrated:
                return self._url(self._free_migrated.pop())
            url = self.create()
            storage = open_storage(url)
            try:
                storage.migrate()
            finally:
                storage.close()
            if self._migrated_print is None:
                self._migrated_print = self._fingerprint(url)
            return url
        if self._free:
            return self._url(self._free.pop())
        if self._free_migrated:
            url = self._url(self._free_migrated.pop())
            self._execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public", url)
            return url
        return self._url(self._new())

    def _fingerprint(self, url: str) -> str | None:
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                row = conn.execute(_FINGERPRINT).fetchone()
            except psycopg.errors.UndefinedTable:  # not migrated at all
                return None
        return None if row is None else str(row[0])

    def release(self, url: str) -> None:
        """Take back a database that :meth:`create` gave, for a later test."""
        name = urlsplit(url).path.lstrip("/")
        self._execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        if self._migrated_print is not None and self._fingerprint(url) == self._migrated_print:
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(_TABLES).fetchone()
                if row is not None and row[0]:
                    conn.execute(f"TRUNCATE {row[0]} RESTART IDENTITY CASCADE")
            self._free_migrated.append(name)
            return
        self._execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public", url)
        self._free.append(name)

    def close(self) -> None:
        """Drop every database made."""
        for name in self._made:
            self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()
        self._free.clear()
        self._free_migrated.clear()


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

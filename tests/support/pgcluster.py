"""PostgreSQL for the test suite: the throwaway :class:`Cluster` (shared with the benchmark,
run here with ``fsync`` off) and :class:`Databases`, one empty database per test."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import psycopg
from bench.pgcluster import Cluster

__all__ = ["Cluster", "Databases"]


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

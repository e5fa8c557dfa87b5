"""One server per SQLite file: ``userprops serve`` holds an exclusive lock on a file beside
the database (``<database>.lock``) for as long as it runs, and ``userprops restore`` while
it replaces the database.

The lock is ``flock(2)``: the kernel drops it when the process ends, however it ends, so a
server killed with SIGKILL leaves nothing stale and the next start takes it at once. The
lock file stays, empty and harmless. (A separate file, not the database itself: SQLite's
own locks are POSIX record locks, which a process loses when it closes any descriptor of
that file.) The rest of the command line beside a running server takes no such lock: it
writes through SQLite's own locking, waiting its turn.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from userprops.storage import sqlite_path


class ServerRunning(Exception):
    """Another process (a server, a restore) holds the database's server lock."""


@contextmanager
def sole_server(database: str) -> Iterator[None]:
    """Hold the database's server lock while the block runs (nothing for PostgreSQL,
    where several servers is the point); :class:`ServerRunning` if another holds it."""
    if not database.startswith("sqlite:"):
        yield
        return
    path = sqlite_path(database) + ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # where the lock cannot be, the database cannot be either
        raise ValueError(f"cannot open {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ServerRunning(
                f"a userprops server is running on {sqlite_path(database)} (it holds {path})"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock

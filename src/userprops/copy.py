"""Copy every project, data source, attribute definition, user, identity, value, contact
and event from one database to another (``userprops copy``), typically from SQLite up to PostgreSQL.

Ids and EUIDs are kept, so API keys, secrets (their hashes) and every EUID a client holds
stay valid. The source is read in one snapshot, the target written in one transaction: a
failed copy leaves the target as empty as it was. Counts are verified before the commit.
"""

from __future__ import annotations

from collections.abc import Callable

from userprops.errors import Conflict, InternalError
from userprops.storage.base import TABLE_COLUMNS, Storage

CHUNK = 2000


def copy_database(
    source: Storage, target: Storage, progress: Callable[[int], None] = lambda n: None
) -> dict[str, int]:
    """Copy everything from ``source`` into the empty ``target``; return rows per table.

    ``progress`` is told how many rows each chunk moved. Raises :class:`Conflict` if the
    target holds any data, :class:`InternalError` if counts differ after copying.
    """
    with source.read() as reader, target.transaction() as writer:
        present = {t: n for t, n in writer.count_rows().items() if n}
        if present:
            raise Conflict(f"the target database is not empty: {present}")
        expected = reader.count_rows()
        for table in TABLE_COLUMNS:
            for rows in reader.dump_rows(table, CHUNK):
                writer.load_rows(table, rows)
                progress(len(rows))
        copied = writer.count_rows()
        if copied != expected:
            raise InternalError(f"copy verification failed: source {expected}, target {copied}")
    return copied


def total_rows(storage: Storage) -> int:
    with storage.read() as tx:
        return sum(tx.count_rows().values())

"""resolve_identities (register for a group of requests), on every backend."""

from __future__ import annotations

import threading

from userprops.schema import SchemaMode
from userprops.storage import Storage, open_storage


def _project(storage: Storage, slug: str = "p") -> int:
    with storage.transaction() as tx:
        return tx.create_project(slug, SchemaMode.AUTO, "UTC").id


def test_known_values_keep_their_user_and_unknown_ones_get_one_each(storage: Storage) -> None:
    p, q = _project(storage), _project(storage, "q")
    with storage.transaction() as tx:
        alice = tx.create_user(p)
        tx.bind_identity(p, "user_id", "alice", alice)
        keys = [
            (p, "user_id", "alice"),
            (p, "user_id", "bob"),
            (p, "anonymous_id", "bob"),  # another name: another user
            (q, "user_id", "alice"),  # another project: another user
            (p, "user_id", "bob"),  # twice in one group: one user
        ]
        resolved = tx.resolve_identities(keys)
    assert set(resolved) == set(keys)
    assert resolved[p, "user_id", "alice"] == alice
    assert len({resolved[k] for k in keys}) == 4
    with storage.read() as tx:
        assert tx.user_project(resolved[q, "user_id", "alice"]) == q
        assert tx.find_identity(p, "anonymous_id", "bob") == resolved[p, "anonymous_id", "bob"]
        assert tx.list_users(p, 0, 10) == sorted({resolved[k] for k in keys if k[0] == p})


def test_concurrent_resolutions_agree_and_leave_no_orphan(storage_url: str) -> None:
    first, second = open_storage(storage_url), open_storage(storage_url)
    first.migrate()
    pid = _project(first)
    keys = [(pid, "user_id", f"v{i}") for i in range(40)]
    answers: list[object] = []  # each resolution's EUIDs by key, or its exception
    start = threading.Barrier(2)

    def resolve(storage: Storage, order: list[tuple[int, str, str]]) -> None:
        start.wait()
        answers.append(storage.run_batch([lambda tx: tx.resolve_identities(order)])[0])

    threads = [
        threading.Thread(target=resolve, args=(first, keys)),
        threading.Thread(target=resolve, args=(second, keys[::-1])),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers[0] == answers[1]
        with first.read() as tx:
            assert len(tx.list_users(pid, 0, 1000)) == 40  # no user without its identity
    finally:
        first.close()
        second.close()

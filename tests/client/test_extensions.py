"""The client's methods for userprops's extensions beyond the first ones: batches, lookup,
erasure, history, the change feed and segments, sync and async, against a real server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator

import pytest

from tests.support.clients import Either, make_client
from tests.support.liveserver import Server
from userprops_client import (
    AsyncClient,
    BatchResult,
    Change,
    Client,
    InvalidParameters,
    SavedSegment,
    UserNotFound,
)


async def test_batch_answers_each_update_in_place(up: Either) -> None:
    euid = await up.new_user()
    results = await up.batch(
        [
            {"euid": euid, "type": "set", "properties": {"plan": "gold"}},
            {"euid": euid, "type": "increase", "properties": {"plan": 1}},
            {"euid": 999_999_999, "type": "set", "properties": {"plan": "x"}},
            {"euid": euid, "type": "increase", "properties": {"n": 2}},
        ]
    )
    assert [r.code for r in results] == [0, 55102, 40404, 0]
    assert results[0] == BatchResult(0, 0, "success") and results[0].ok
    assert not results[1].ok and results[1].errors[0].property == "plan"
    assert await up.get(euid) == {"plan": "gold", "n": 2}


async def test_lookup_finds_without_creating_and_delete_user_erases(up: Either) -> None:
    value = uuid.uuid4().hex
    assert await up.lookup("user_id", value) is None
    euid = (await up.register("user_id", [value]))[value]
    assert await up.lookup("user_id", value) == euid
    await up.set(euid, {"plan": "gold"})
    assert await up.delete_user(euid) is None
    assert await up.lookup("user_id", value) is None
    with pytest.raises(UserNotFound):
        await up.get(euid)
    with pytest.raises(UserNotFound):
        await up.delete_user(euid)


async def test_history_pages_a_users_changes(up: Either) -> None:
    euid = await up.new_user()
    for plan in ("free", "basic", "gold"):
        await up.set(euid, {"plan": plan, "n": 1})
    page = await up.history(euid, property="plan", limit=2)
    assert [(c.old, c.new) for c in page.changes] == [("basic", "gold"), ("free", "basic")]
    assert page.euid == euid and page.next_cursor is not None
    rest = await up.history(euid, property="plan", cursor=page.next_cursor)
    assert [(c.old, c.new) for c in rest.changes] == [(None, "free")]
    assert rest.next_cursor is None
    assert isinstance(rest.changes[0], Change) and rest.changes[0].source == "load"


async def test_changes_page_follows_the_feed(up: Either) -> None:
    start = (await up.changes_page()).last_seq
    while True:  # the package's server is shared: skip to its end
        page = await up.changes_page(start, limit=1000)
        if not page.changes:
            break
        start = page.last_seq
    euid = await up.new_user()
    await up.increase(euid, {"n": 5})
    page = await up.changes_page(start, wait=10)
    assert [(c.euid, c.property, c.new) for c in page.changes] == [(euid, "n", 5)]
    assert page.last_seq == page.changes[-1].seq


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_changes_iterates_with_long_polls(server: Server, kind: str) -> None:
    """The endless iterator: changes already there, then one committed while it waits."""
    client = make_client(kind, server)
    writer = make_client("sync", server)
    assert isinstance(writer, Client)
    try:
        value = uuid.uuid4().hex
        euid = writer.register("user_id", [value])[value]
        writer.set(euid, {"first": 1})
        after = writer.changes_page(0, limit=1000).last_seq - 1
        while (page := writer.changes_page(after, limit=1000)).changes[-1].euid != euid:
            after = page.last_seq  # (pages of other tests' changes)

        def write_later() -> None:
            writer.set(euid, {"second": 2})

        if isinstance(client, Client):
            changes = client.changes(after, wait=30)
            first = await asyncio.to_thread(next, changes)
            asyncio.get_running_loop().call_later(0.2, write_later)
            second = await asyncio.to_thread(next, changes)
        else:
            assert isinstance(client, AsyncClient)
            stream = client.changes(after, wait=30)
            assert isinstance(stream, AsyncGenerator)  # typed as an AsyncIterator: no aclose
            first = await anext(stream)
            asyncio.get_running_loop().call_later(0.2, write_later)
            second = await anext(stream)
            await stream.aclose()
        assert (first.property, first.new) == ("first", 1)
        assert (second.property, second.new) == ("second", 2)
    finally:
        writer.close()
        if isinstance(client, Client):
            client.close()
        else:
            await client.aclose()


async def test_segments_query_save_page_and_list_a_users(up: Either) -> None:
    tag = uuid.uuid4().hex[:8]
    name = f"s{tag}"
    euids = [await up.new_user() for _ in range(3)]
    for euid, n in zip(euids, (1, 5, 9), strict=True):
        await up.set(euid, {f"n{tag}": n})
    where = {"property": f"n{tag}", "op": "gte", "value": 5}
    page = await up.query_segment(where, limit=1)
    assert (page.count, page.euids, page.complete) == (2, [euids[1]], True)
    rest = await up.query_segment(where, limit=1, cursor=page.next_cursor)
    assert (rest.euids, rest.next_cursor) == ([euids[2]], None)
    assert await up.save_segment(name, where) == SavedSegment(name, True, 2)
    assert await up.iter_segment_members(name, page_size=1) == euids[1:]
    assert await up.user_segments(euids[2]) == [name]
    assert await up.user_segments(euids[0]) == []
    with pytest.raises(InvalidParameters) as bad:
        await up.query_segment({"property": f"n{tag}", "op": "contains", "value": "x"})
    assert f"n{tag}" in str(bad.value)

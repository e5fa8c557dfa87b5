"""The console's segment pages over HTTP: the list, the builder's live preview (the query
of ``POST /v1/segment/query``), saving, a segment's page and the user page's memberships."""

from __future__ import annotations

import json
import re

import pytest

from tests.console.test_pages import actions
from tests.console.test_security import HOSTILE, inline
from tests.support.api import Api
from tests.support.console import Browser
from userprops import admin, queries
from userprops.config import Limits
from userprops.console import segment_pages
from userprops.history import HistoryQuery

GOLD = {"property": "plan", "op": "eq", "value": "gold"}
HTMX = {"hx-request": "true"}


async def shop(b: Browser) -> tuple[Api, list[int]]:
    """Project ``shop`` with four users: two gold, one free, one without a plan."""
    api = await b.api("shop")
    euids = await api.register("u-1", "u-2", "u-3", "u-4")
    for euid, plan in zip(euids, ["gold", "free", "gold"], strict=False):
        assert (await api.set(euid, "set", {"plan": plan, "age": 30})).json()["code"] == 0
    return api, euids


def members_shown(html: str) -> list[int]:
    return [int(e) for e in re.findall(r'<li><a href="/admin/users/(\d+)">', html)]


async def preview(b: Browser, where: object, **headers: str) -> str:
    text = where if isinstance(where, str) else json.dumps(where)
    answer = await b.post(
        "/admin/projects/shop/segments/preview", {"where": text}, headers=headers or HTMX
    )
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_the_segments_page_lists_saved_segments_with_their_member_counts(
    operator: Browser,
) -> None:
    await shop(operator)
    admin.save_segment(operator.storage, "shop", "gold", GOLD, Limits())
    page = await operator.get("/admin/projects/shop/segments")
    assert page.status_code == 200
    row = re.search(r'<tr id="segment-gold">.*?</tr>', page.text, re.S)
    assert row, page.text
    assert 'href="/admin/projects/shop/segments/gold"' in row[0]
    assert '<td class="num" data-label="Members">2</td>' in row[0]
    assert "&#34;gold&#34;" in row[0]  # the condition
    assert 'aria-current="page">Segments</a>' in page.text
    assert 'hx-post="/admin/projects/shop/segments/preview"' in page.text


async def test_the_preview_answers_the_count_and_first_members_like_the_query_api(
    operator: Browser,
) -> None:
    api, euids = await shop(operator)
    fragment = await preview(
        operator, {"and": [GOLD, {"property": "age", "op": "gte", "value": 18}]}
    )
    assert fragment.startswith('<section id="preview"') and "<html" not in fragment
    assert '<span class="figure">2</span> users match' in fragment
    assert members_shown(fragment) == [euids[0], euids[2]]
    answer = await api.post("/v1/segment/query", {"where": GOLD})
    assert answer.json()["data"]["count"] == 2
    empty = await preview(operator, {"property": "plan", "op": "eq", "value": "none"})
    assert '<span class="figure">0</span> users match' in empty


async def test_the_preview_shows_only_the_first_members(
    operator: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, euids = await shop(operator)
    monkeypatch.setattr(segment_pages, "PREVIEW_MEMBERS", 2)
    fragment = await preview(operator, {"property": "plan", "op": "is_set"})
    assert '<span class="figure">3</span>' in fragment
    assert members_shown(fragment) == euids[:2] and "…" in fragment


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            {"and": [GOLD, {"property": "age", "op": "contains", "value": "3"}]},
            "55004: where.and[1]: age is NUMBER: op must be one of",
        ),
        ({"property": "nothing", "op": "eq", "value": 1}, "55004: where: attribute nothing is"),
        ('{"property": "plan",', "55004: where is not valid JSON"),
        ({"property": "age", "op": "gt", "value": "old"}, "55004: where (age gt): expected NUMBER"),
    ],
)
async def test_the_preview_of_a_bad_condition_says_what_is_wrong_with_it(
    operator: Browser, where: object, message: str
) -> None:
    await shop(operator)
    fragment = await preview(operator, where)
    assert '<p class="error" role="alert">' + message in fragment.replace("&#39;", "'")


async def test_the_preview_without_javascript_is_the_builder_page_with_it(
    operator: Browser,
) -> None:
    await shop(operator)
    await operator.get("/admin/projects/shop/segments")
    answer = await operator.post(
        "/admin/projects/shop/segments/preview", {"name": "gold", "where": json.dumps(GOLD)}
    )
    assert answer.status_code == 200 and "<html" in answer.text
    assert '<span class="figure">2</span> users match' in answer.text
    assert 'name="name" value="gold"' in answer.text
    assert "&#34;property&#34;: &#34;plan&#34;" in answer.text  # the textarea keeps it
    nothing = await operator.post("/admin/projects/shop/segments/preview", {"where": " "})
    assert "Write a condition" in nothing.text


async def test_an_example_fills_the_builder_with_the_projects_own_attributes(
    operator: Browser,
) -> None:
    await shop(operator)
    page = await operator.get("/admin/projects/shop/segments")
    links = re.findall(r'<a href="(/admin/projects/shop/segments\?where=[^"]+)">', page.text)
    assert links
    assert any("age" in link and "between" in link for link in links)
    chosen = await operator.get(links[0].replace("&amp;", "&"))
    assert chosen.status_code == 200 and '<span class="figure">' in chosen.text


async def test_saving_creates_a_segment_audited_and_shows_its_page(operator: Browser) -> None:
    _, euids = await shop(operator)
    await operator.get("/admin/projects/shop/segments")
    saved = await operator.post(
        "/admin/projects/shop/segments", {"name": "gold", "where": json.dumps(GOLD)}
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == "/admin/projects/shop/segments/gold"
    shown = admin.show_segment(operator.storage, "shop", "gold")
    assert (shown["where"], shown["count"], shown["complete"]) == (GOLD, 2, True)
    assert ("alice", "segment.save", "shop") in actions(operator.storage)
    page = await operator.get("/admin/projects/shop/segments/gold")
    assert page.status_code == 200
    assert members_shown(page.text.split('id="members"')[1].split("</section>")[0]) == [
        euids[0],
        euids[2],
    ]
    assert '<input type="hidden" name="editing" value="gold">' in page.text


async def test_replacing_the_condition_records_who_entered_and_left(operator: Browser) -> None:
    _, euids = await shop(operator)
    admin.save_segment(operator.storage, "shop", "gold", GOLD, Limits())
    await operator.get("/admin/projects/shop/segments/gold")
    free = {"property": "plan", "op": "eq", "value": "free"}
    saved = await operator.post(
        "/admin/projects/shop/segments", {"editing": "gold", "where": json.dumps(free)}
    )
    assert saved.status_code == 303
    page = admin.segment_members(operator.storage, "shop", queries.MembersQuery("gold"))
    assert page["euids"] == [euids[1]]
    history = admin.list_history(operator.storage, HistoryQuery(euids[1]))["changes"]
    assert (history[0]["op"], history[0]["source"]) == ("segment.entered", "console:alice")
    entries = [a for a in actions(operator.storage) if a[1] == "segment.save"]
    assert entries == [("cli", "segment.save", "shop"), ("alice", "segment.save", "shop")]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": "Gold!", "where": json.dumps(GOLD)}, "name: name must match"),
        ({"name": "gold", "where": "{"}, "where is not valid JSON"),
        ({"name": "gold", "where": json.dumps({"property": "x", "op": "eq", "value": 1})}, "x"),
    ],
)
async def test_a_bad_segment_is_refused_with_the_reason(
    operator: Browser, form: dict[str, str], message: str
) -> None:
    await shop(operator)
    await operator.get("/admin/projects/shop/segments")
    answer = await operator.post("/admin/projects/shop/segments", form)
    assert answer.status_code == 400
    assert message in answer.text.replace("&#39;", "'")
    assert admin.list_segments(operator.storage, "shop") == []
    assert 'role="alert"' in answer.text and "Save segment" in answer.text


async def test_a_bad_replacement_stays_on_the_segments_page(operator: Browser) -> None:
    await shop(operator)
    admin.save_segment(operator.storage, "shop", "gold", GOLD, Limits())
    await operator.get("/admin/projects/shop/segments/gold")
    answer = await operator.post(
        "/admin/projects/shop/segments", {"editing": "gold", "where": '{"or": []}'}
    )
    assert answer.status_code == 400 and "Replace the condition" in answer.text
    assert admin.show_segment(operator.storage, "shop", "gold")["where"] == GOLD


async def test_a_segments_members_are_paged(
    operator: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, euids = await shop(operator)
    admin.save_segment(
        operator.storage, "shop", "anyone", {"property": "age", "op": "is_set"}, Limits()
    )
    monkeypatch.setattr(segment_pages, "MEMBERS_PAGE", 2)
    first = await operator.get("/admin/projects/shop/segments/anyone")
    section = first.text.split('id="members"')[1]
    assert members_shown(section.split("</section>")[0]) == euids[:2]
    cursor = re.search(r'href="\?cursor=([^"#]+)#members"', first.text)
    assert cursor, first.text
    second = await operator.get("/admin/projects/shop/segments/anyone", cursor=cursor[1])
    assert members_shown(second.text.split('id="members"')[1].split("</section>")[0]) == [euids[2]]
    assert "First page" in second.text


async def test_an_unknown_segment_is_404(operator: Browser) -> None:
    await shop(operator)
    assert (await operator.get("/admin/projects/shop/segments/nothing")).status_code == 404
    assert (await operator.get("/admin/projects/nope/segments")).status_code == 404


async def test_the_user_page_lists_the_users_segments(operator: Browser) -> None:
    _, euids = await shop(operator)
    admin.save_segment(operator.storage, "shop", "gold", GOLD, Limits())
    admin.save_segment(
        operator.storage, "shop", "adults", {"property": "age", "op": "gte", "value": 18}, Limits()
    )
    gold = await operator.get(f"/admin/users/{euids[0]}")
    section = gold.text.split('id="segments"')[1].split("</section>")[0]
    assert re.findall(r'href="/admin/projects/shop/segments/(\w+)"', section) == ["adults", "gold"]
    nobody = await operator.get(f"/admin/users/{euids[3]}")
    assert "In no saved segment." in nobody.text


async def test_hostile_values_in_conditions_render_escaped(operator: Browser) -> None:
    await shop(operator)
    hostile = {"or": [{"property": "plan", "op": "eq", "value": v} for v in HOSTILE]}
    admin.save_segment(operator.storage, "shop", "odd", hostile, Limits())
    pages = [
        await operator.get("/admin/projects/shop/segments"),
        await operator.get("/admin/projects/shop/segments/odd"),
        await operator.post(
            "/admin/projects/shop/segments/preview",
            {"where": json.dumps({"property": HOSTILE[0], "op": "eq", "value": 1})},
            headers=HTMX,
        ),
        await operator.post(
            "/admin/projects/shop/segments", {"name": "x", "where": "\n".join(HOSTILE)}
        ),
    ]
    for page in pages:
        assert inline(page.text) == [], page.url
        for raw in ("<script>alert", "<img src=x", "<svg onload", "<b>bold</b>"):
            assert raw not in page.text, (raw, page.url)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[1].text
    assert "&lt;/textarea&gt;&lt;b&gt;bold&lt;/b&gt;" in pages[3].text  # kept in the builder


@pytest.mark.parametrize("token", ["", "forged"])
async def test_saving_or_previewing_without_the_sessions_token_is_403(
    operator: Browser, token: str
) -> None:
    await shop(operator)
    form = {"name": "gold", "where": json.dumps(GOLD)}
    for path in ("/admin/projects/shop/segments", "/admin/projects/shop/segments/preview"):
        answer = await operator.post(path, form, csrf=token, headers=HTMX)
        assert answer.status_code == 403 and "security token" in answer.text
    assert admin.list_segments(operator.storage, "shop") == []
    assert not [a for a in actions(operator.storage) if a[1] == "segment.save"]

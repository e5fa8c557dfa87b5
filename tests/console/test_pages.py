"""Every console page and action, over HTTP, as an operator's browser uses them."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.console import Browser, browser_on
from userprops import admin, audit
from userprops.schema import AttrType
from userprops.storage import Storage

AUDIT_ROW = re.compile(  # who, action, target
    r"<td[^>]*>(\w+)</td>\s*<td[^>]*><code>([\w.]+)</code></td>\s*<td[^>]*>([\w-]+)</td>"
)


def secrets_shown(page: httpx.Response) -> tuple[str, str]:
    found = re.search(
        r"<dt>api_key</dt><dd><code[^>]*>([0-9a-f]{24})</code></dd>\s*"
        r"<dt>api_secret</dt><dd><code[^>]*>([0-9a-f]{24})</code>",
        page.text,
    )
    assert found, page.text
    return found[1], found[2]


async def api_status(b: Browser, key: str, secret: str) -> int:
    answer = await b.http.get("/v1/user/property", params={"euid": 1}, auth=(key, secret))
    return int(answer.json()["code"])


def actions(storage: Storage) -> list[tuple[str, str, str]]:
    entries, _ = audit.page(storage, None, 100)
    return [(e.actor, e.action, e.target) for e in reversed(entries)]


# Projects


async def test_the_projects_page_lists_them_and_creates_one(operator: Browser) -> None:
    admin.create_project(operator.storage, "blog")
    page = await operator.get("/admin/projects")
    assert page.status_code == 200 and ">blog</a>" in page.text
    made = await operator.post(
        "/admin/projects", {"slug": "shop", "schema": "strict", "timezone": "Asia/Tokyo"}
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/admin/projects/shop/datasources"
    shop = admin.get_project(operator.storage, "shop")
    assert (shop.schema_mode, shop.timezone) == ("strict", "Asia/Tokyo")
    assert ("alice", "project.create", "shop") in actions(operator.storage)
    home = await operator.get("/admin/projects/shop")
    assert home.status_code == 303 and home.headers["location"].endswith("/shop/datasources")


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"slug": "Bad Slug"}, 400, "project slug: 1-64"),
        ({"slug": "shop", "timezone": "Nowhere/City"}, 400, "unknown time zone"),
        ({"slug": "shop", "schema": "loose"}, 400, "is not a valid SchemaMode"),
        ({"slug": "blog"}, 409, "already exists"),
    ],
)
async def test_a_bad_project_is_refused_with_the_reason(
    operator: Browser, form: dict[str, str], status: int, message: str
) -> None:
    admin.create_project(operator.storage, "blog")
    answer = await operator.post("/admin/projects", form)
    assert answer.status_code == status
    assert message in answer.text.replace("&#39;", "'")
    assert [p.slug for p in admin.list_projects(operator.storage)] == ["blog"]


# Data sources


async def test_a_new_data_source_shows_its_secret_once(operator: Browser) -> None:
    admin.create_project(operator.storage, "shop")
    made = await operator.post("/admin/projects/shop/datasources", {"name": "crm"})
    assert made.status_code == 201
    assert "shown only this once" in made.text
    key, secret = secrets_shown(made)
    assert await api_status(operator, key, secret) == 40404  # authenticated: no such user
    again = await operator.get("/admin/projects/shop/datasources")
    assert key in again.text and secret not in again.text
    assert ("alice", "datasource.create", key) in actions(operator.storage)
    assert secret not in repr(audit.page(operator.storage, None, 100))


async def test_rotating_shows_the_new_secret_once_and_the_old_one_stops(
    operator: Browser,
) -> None:
    admin.create_project(operator.storage, "shop")
    creds = admin.create_datasource(operator.storage, "shop", "crm")
    key = creds.datasource.api_key
    assert await api_status(operator, key, creds.api_secret) == 40404
    rotated = await operator.post(f"/admin/projects/shop/datasources/{key}/rotate")
    assert rotated.status_code == 200
    shown_key, secret = secrets_shown(rotated)
    assert shown_key == key and secret != creds.api_secret
    assert await api_status(operator, key, creds.api_secret) == 40050
    assert await api_status(operator, key, secret) == 40404
    assert secret not in (await operator.get("/admin/projects/shop/datasources")).text
    assert ("alice", "datasource.rotate", key) in actions(operator.storage)


async def test_disabling_and_enabling_a_data_source(operator: Browser) -> None:
    admin.create_project(operator.storage, "shop")
    creds = admin.create_datasource(operator.storage, "shop", "crm")
    key = creds.datasource.api_key
    off = await operator.post(f"/admin/projects/shop/datasources/{key}/disable")
    assert off.status_code == 303
    assert off.headers["location"] == f"/admin/projects/shop/datasources#ds-{key}"
    assert await api_status(operator, key, creds.api_secret) == 40050
    page = await operator.get("/admin/projects/shop/datasources")
    assert ">disabled<" in page.text and f"/{key}/enable" in page.text
    assert (
        await operator.post(f"/admin/projects/shop/datasources/{key}/enable")
    ).status_code == 303
    assert await api_status(operator, key, creds.api_secret) == 40404
    assert [a for _, a, t in actions(operator.storage) if t == key][-2:] == [
        "datasource.disable",
        "datasource.enable",
    ]


async def test_a_data_source_is_acted_on_only_under_its_own_project(operator: Browser) -> None:
    admin.create_project(operator.storage, "shop")
    admin.create_project(operator.storage, "blog")
    key = admin.create_datasource(operator.storage, "blog", "cms").datasource.api_key
    for verb in ("rotate", "disable"):
        answer = await operator.post(f"/admin/projects/shop/datasources/{key}/{verb}")
        assert answer.status_code == 404
    assert admin.list_datasources(operator.storage, "blog")[0].enabled


@pytest.mark.parametrize(
    ("name", "status", "message"), [("", 400, "1 to 128"), ("crm", 409, "already exists")]
)
async def test_a_bad_data_source_is_refused_with_the_reason(
    operator: Browser, name: str, status: int, message: str
) -> None:
    admin.create_project(operator.storage, "shop")
    admin.create_datasource(operator.storage, "shop", "crm")
    answer = await operator.post("/admin/projects/shop/datasources", {"name": name})
    assert answer.status_code == status and message in answer.text
    assert "api_secret" not in answer.text


async def test_a_missing_project_is_404(operator: Browser) -> None:
    for path in ("datasources", "attributes", "users"):
        answer = await operator.get(f"/admin/projects/nope/{path}")
        assert answer.status_code == 404 and "no project" in answer.text


# The attribute schema


async def test_the_schema_page_lists_and_defines_attributes(operator: Browser) -> None:
    admin.create_project(operator.storage, "shop")
    admin.define_attribute(operator.storage, "shop", "plan", AttrType.STRING)
    page = await operator.get("/admin/projects/shop/attributes")
    assert re.search(r"<code>plan</code></td><td[^>]*>STRING</td>", page.text)
    made = await operator.post(
        "/admin/projects/shop/attributes", {"name": "visits", "type": "NUMBER"}
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/admin/projects/shop/attributes#attr-visits"
    assert ("visits", AttrType.NUMBER) in [
        (n, t) for n, t, _ in admin.list_attributes(operator.storage, "shop")
    ]
    assert ("alice", "attribute.define", "shop") in actions(operator.storage)


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"name": "plan", "type": "NUMBER"}, 409, "already defined as STRING"),
        ({"name": "Bad", "type": "STRING"}, 400, "attribute name"),
        ({"name": "ok", "type": "COLOUR"}, 400, "unknown attribute type"),
    ],
)
async def test_a_bad_definition_is_refused_with_the_reason(
    operator: Browser, form: dict[str, str], status: int, message: str
) -> None:
    admin.create_project(operator.storage, "shop")
    admin.define_attribute(operator.storage, "shop", "plan", AttrType.STRING)
    answer = await operator.post("/admin/projects/shop/attributes", form)
    assert answer.status_code == status and message in answer.text
    assert [n for n, _, _ in admin.list_attributes(operator.storage, "shop")] == ["plan"]


# Users


async def test_users_are_found_by_euid_identity_or_contact(operator: Browser) -> None:
    api = await operator.api("shop")
    [euid] = await api.register("u-1")
    r = await api.post("/v1/user/contact", {"euid": euid, "contacts": {"email": "a@b.org"}})
    assert r.json()["code"] == 0
    for query in (
        {"key": "euid", "value": str(euid)},
        {"project": "shop", "key": "identity:user_id", "value": "u-1"},
        {"project": "shop", "key": "contact:email", "value": "a@b.org"},
    ):
        found = await operator.get("/admin/users", **query)
        assert found.status_code == 303, found.text
        assert found.headers["location"] == f"/admin/users/{euid}"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"key": "euid", "value": "999999"}, 404, "No user matches."),
        ({"key": "euid", "value": "x1"}, 400, "not a number"),
        ({"project": "shop", "key": "identity:user_id", "value": "nobody"}, 404, "No user"),
        ({"project": "shop", "key": "contact:email", "value": "n@b.org"}, 404, "No user"),
        ({"key": "identity:user_id", "value": "u-1"}, 400, "choose the project"),
        ({"project": "shop", "key": "identity:nickname", "value": "u"}, 400, "look up by"),
        ({"project": "nope", "key": "identity:user_id", "value": "u"}, 404, "no project"),
    ],
)
async def test_a_lookup_that_finds_nobody_says_why(
    operator: Browser, query: dict[str, str], status: int, message: str
) -> None:
    api = await operator.api("shop")
    await api.register("u-1")
    page = await operator.get("/admin/users", **query)
    assert page.status_code == status and message in page.text.replace("&#39;", "'")


async def test_the_lookup_form_offers_every_project_and_way(operator: Browser) -> None:
    await operator.api("shop")
    page = await operator.get("/admin/users")
    assert page.status_code == 200
    assert '<option value="shop"' in page.text
    for key in ("euid", "identity:anonymous_id", "contact:mobile_phone"):
        assert f'<option value="{key}"' in page.text


async def test_a_projects_users_are_listed_a_page_at_a_time(operator: Browser) -> None:
    api = await operator.api("shop")
    euids = await api.register(*[f"u-{i}" for i in range(3)])
    page = await operator.get("/admin/projects/shop/users")
    assert all(f'href="/admin/users/{e}"' in page.text for e in euids)
    after = await operator.get("/admin/projects/shop/users", after=str(euids[1]))
    assert f'href="/admin/users/{euids[0]}"' not in after.text
    assert f'href="/admin/users/{euids[2]}"' in after.text


async def test_the_user_page_shows_everything_about_a_user(operator: Browser) -> None:
    api = await operator.api("shop")
    [euid] = await api.register("u-1")
    await api.register("anon-9", name="anonymous_id")
    assert (await api.set(euid, "set", {"plan": "gold", "score": 1.5, "vip": True})).json()[
        "code"
    ] == 0
    await api.set(euid, "set", {"plan": "platinum"})
    await api.set(euid, "add", {"tags": ["a", "b"]})
    await api.post("/v1/user/contact", {"euid": euid, "contacts": {"email": "u1@example.org"}})
    event = {"euid": euid, "event_name": "purchase", "itime": 1_700_000_000_000}
    await api.post("/v1/event/report", {"data": [{**event, "properties": {"amount": 12}}]})
    page = await operator.get(f"/admin/users/{euid}")
    assert page.status_code == 200
    text = page.text
    assert "<dt>user_id</dt><dd>u-1</dd>" in text
    assert "<dt>email</dt><dd>u1@example.org</dd>" in text
    assert re.search(r"<code>plan</code></td><td[^>]*>STRING</td><td[^>]*>platinum</td>", text)
    assert re.search(r"<code>score</code></td><td[^>]*>NUMBER</td><td[^>]*>1.5</td>", text)
    assert re.search(r"<code>vip</code></td><td[^>]*>BOOL</td><td[^>]*>true</td>", text)
    assert re.search(
        r"<code>tags</code></td><td[^>]*>LIST</td><td[^>]*>\[&#34;a&#34;,&#34;b&#34;\]</td>", text
    )
    assert "<code>purchase</code>" in text and "2023-11-14 22:13:20" in text
    assert "{&#34;amount&#34;:12}" in text
    # The history: newest first, old -> new, with the data source that wrote it.
    history = text[text.index('id="history"') :]
    assert history.index("gold</td>") > history.index("platinum")
    assert re.search(r"gold → platinum</td>\s*<td[^>]*>test</td>", history)
    assert re.search(r"<span class=\"absent\">none</span> → gold</td>", history)


async def test_the_history_is_paged_newest_first(operator: Browser) -> None:
    api = await operator.api("shop")
    [euid] = await api.register("u-1")
    for i in range(30):
        await api.set(euid, "set", {"n": i})
    first = await operator.get(f"/admin/users/{euid}")
    cursor = re.search(r'href="\?before=([\w-]+)#history"', first.text)
    assert cursor, first.text
    assert "28 → 29" in first.text and "4 → 5" in first.text and "3 → 4" not in first.text
    second = await operator.get(f"/admin/users/{euid}", before=cursor[1])
    assert "3 → 4" in second.text and "28 → 29" not in second.text
    assert "none</span> → 0" in second.text
    assert 'href="?before=' not in second.text  # the last page
    assert (await operator.get(f"/admin/users/{euid}", before="bogus")).status_code == 400


async def test_an_unknown_user_is_404(operator: Browser) -> None:
    page = await operator.get("/admin/users/424242")
    assert page.status_code == 404 and "no user with EUID 424242" in page.text


# The overview and the audit log


async def test_the_overview_counts_users_and_writes_per_minute(operator: Browser) -> None:
    shop, blog = await operator.api("shop"), await operator.api("blog")
    euids = await shop.register("a", "b", "c")
    for euid in euids:
        await shop.set(euid, "set", {"plan": "gold"})
    await shop.set(euids[0], "set", {"plan": "gold"})  # changes nothing: no write counted
    [reader] = await blog.register("r")
    await blog.set(reader, "increase", {"visits": 1})
    page = await operator.get("/admin/")
    assert page.status_code == 200
    figures = re.findall(r'<span class="figure">([\d,]+)</span>', page.text)
    users, writes, busiest = figures
    assert (users, writes) == ("4", "4") and 1 <= int(busiest) <= 4
    assert page.text.count('<rect class="bar"') == 60
    only_shop = await operator.get("/admin/", project="shop")
    assert re.findall(r'<span class="figure">([\d,]+)</span>', only_shop.text)[1] == "3"
    assert re.search(r">shop</a></td><td class=\"num\">3</td><td class=\"num\">3</td>", page.text)


async def test_the_audit_log_shows_who_did_what_newest_first_a_page_at_a_time(
    operator: Browser,
) -> None:
    for i in range(60):
        admin.create_project(operator.storage, f"p{i}", actor="bob")
    page = await operator.get("/admin/audit")
    assert page.status_code == 200
    rows = AUDIT_ROW.findall(page.text)
    assert rows[0] == ("bob", "project.create", "p59")
    assert ("alice", "login", "alice") not in rows  # on the next page
    assert "<span>schema=auto</span> <span>timezone=UTC</span>" in page.text
    older = re.search(r'href="\?before=(\d+)"', page.text)
    assert older
    rest = await operator.get("/admin/audit", before=older[1])
    rows = AUDIT_ROW.findall(rest.text)
    assert ("alice", "login", "alice") in rows and rows[0][2] == "p9"


# Static files, errors, and the API beside the console


async def test_static_files_are_served_with_caching_headers_without_a_session(
    browser: Browser,
) -> None:
    login = await browser.get("/admin/login")
    urls = re.findall(r'(?:href|src)="(/admin/static/[^"]+)"', login.text)
    assert {u.split("?")[0].rsplit("/", 1)[1] for u in urls} == {
        "console.css",
        "favicon.svg",
        "htmx.min.js",
    }
    for url in urls:
        answer = await browser.http.get(url)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        etag = answer.headers["etag"]
        again = await browser.http.get(url, headers={"if-none-match": etag})
        assert again.status_code == 304 and again.content == b""
    js = await browser.http.get("/admin/static/htmx.min.js")
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert js.headers["cache-control"] == "no-cache"  # no version: check each time
    assert (await browser.http.get("/admin/static/nope.js")).status_code == 404
    assert (await browser.http.get("/admin/static/..%2Fapp.py")).status_code == 404


async def test_unknown_console_paths_and_methods_are_html_errors(operator: Browser) -> None:
    missing = await operator.get("/admin/nothing/here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "text/html; charset=utf-8"
    assert "There is no such page." in missing.text
    wrong = await operator.http.delete("/admin/projects")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST"


async def test_the_console_leaves_the_api_and_its_envelope_alone(operator: Browser) -> None:
    for path in ("/adminx", "/v1/admin", "/administrator"):
        answer = await operator.http.get(path)
        assert answer.status_code == 404 and answer.json()["code"] == 40400
    assert (await operator.http.get("/healthz")).json()["code"] == 0


async def test_the_console_can_be_turned_off(
    storage_url: str, storage: Storage, alice: str
) -> None:
    async with browser_on(storage_url, storage, console=False) as b:
        answer = await b.http.get("/admin/login")
        assert answer.status_code == 404 and answer.json()["code"] == 40400


async def test_an_unexpected_error_shows_no_trace(
    operator: Browser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> object:
        raise RuntimeError("internal detail 8f2e")

    monkeypatch.setattr(admin, "list_projects", broken)
    answer = await operator.get("/admin/projects")
    assert answer.status_code == 500
    assert "internal detail" not in answer.text and "Traceback" not in answer.text
    assert "Something went wrong" in answer.text
    assert "internal detail 8f2e" in caplog.text  # in the server's log instead
    metrics = await operator.http.get("/metrics")
    assert 'route="/admin",method="GET",status="500"' in metrics.text


async def test_a_storage_outage_is_503(operator: Browser, monkeypatch: pytest.MonkeyPatch) -> None:
    from userprops.errors import StorageUnavailable

    def down(*args: object) -> object:
        raise StorageUnavailable("storage unavailable: connection refused to db.internal:5432")

    monkeypatch.setattr(admin, "list_projects", down)
    answer = await operator.get("/admin/projects")
    assert answer.status_code == 503 and "db.internal" not in answer.text

"""The console's protections, each checked on its own: CSRF tokens, a strict
Content-Security-Policy and its neighbours on every answer, pages with nothing inline for
that policy to forbid, and user-supplied values rendered inert."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.support.console import PAGES, PASSWORD, Browser, browser_on
from userprops import admin, operators
from userprops.console.app import CSP
from userprops.storage import Storage

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "'><svg onload=alert(3)>",
    "</textarea><b>bold</b>",
    "javascript:alert(4)",
    "{{ 7*7 }}",
]
TEMPLATES = Path(__file__).parents[2] / "src/userprops/console/templates"


class Inline(HTMLParser):
    """What a strict CSP would block, found in a page: inline scripts, event handler
    attributes, inline styles, and URLs with a ``javascript:`` scheme."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script":
            if not names.get("src"):
                self.found.append("inline <script>")
            self._script = True
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"{name}= on <{tag}>")
            if name in ("href", "src", "action") and (value or "").lower().startswith("javascript"):
                self.found.append(f"javascript: URL on <{tag}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script = False

    def handle_data(self, data: str) -> None:
        if self._script and data.strip():
            self.found.append("script body")


def inline(html: str) -> list[str]:
    parser = Inline()
    parser.feed(html)
    return parser.found


async def visit_everything(b: Browser) -> list[httpx.Response]:
    """Every page and action of a project with a user, as alice."""
    api = await b.api("shop")
    [euid] = await api.register("u-1")
    await api.set(euid, "set", {"plan": "gold"})
    key = admin.list_datasources(b.storage, "shop")[0].api_key
    await b.get("/admin/login")
    await b.post("/admin/login", {"name": "alice", "password": "wrong password"})
    await b.login()
    for path in (*PAGES, f"/admin/users/{euid}", "/admin/nothing", "/admin/static/console.css"):
        await b.get(path)
    await b.post("/admin/projects", {"slug": "blog"})
    await b.post("/admin/projects", {"slug": "Bad"})
    await b.post("/admin/projects/shop/datasources", {"name": "crm"})
    await b.post(f"/admin/projects/shop/datasources/{key}/rotate")
    await b.post(f"/admin/projects/shop/datasources/{key}/disable")
    await b.post("/admin/projects/shop/attributes", {"name": "age", "type": "NUMBER"})
    where = '{"property": "plan", "op": "eq", "value": "gold"}'
    await b.post("/admin/projects/shop/segments/preview", {"where": where})
    await b.post(
        "/admin/projects/shop/segments/preview", {"where": "{"}, headers={"hx-request": "true"}
    )
    await b.post("/admin/projects/shop/segments", {"name": "gold", "where": where})
    await b.get("/admin/projects/shop/segments/gold")
    await b.post("/admin/projects/shop/webhooks", {"url": "http://127.0.0.1:9/in"})
    await b.get("/admin/projects/shop/webhooks/1")
    await b.post("/admin/projects/shop/webhooks/1/disable")
    await b.post("/admin/projects", {"slug": "x"}, csrf="forged")
    await b.post("/admin/logout")
    return b.pages


# CSRF


@pytest.mark.parametrize("token", ["", "forged", "A" * 43])
async def test_a_form_without_the_sessions_token_is_403_and_does_nothing(
    operator: Browser, token: str
) -> None:
    answer = await operator.post("/admin/projects", {"slug": "shop"}, csrf=token)
    assert answer.status_code == 403
    assert "security token" in answer.text
    assert admin.list_projects(operator.storage) == []


async def test_another_sessions_token_is_refused(
    storage_url: str, storage: Storage, operator: Browser
) -> None:
    operators.create(storage, "bob", PASSWORD)
    async with browser_on(storage_url, storage) as bob:
        await bob.login("bob")
        await bob.get("/admin/projects")
        answer = await operator.post("/admin/projects", {"slug": "shop"}, csrf=bob.csrf)
        assert answer.status_code == 403
        assert (await bob.post("/admin/projects", {"slug": "shop"})).status_code == 303


async def test_the_login_forms_token_is_no_sessions_token(browser: Browser) -> None:
    await browser.get("/admin/login")
    login_token = browser.csrf
    await browser.post("/admin/login", {"name": "alice", "password": PASSWORD})
    answer = await browser.post("/admin/projects", {"slug": "shop"}, csrf=login_token)
    assert answer.status_code == 403
    await browser.get("/admin/projects")
    assert browser.csrf != login_token
    assert (await browser.post("/admin/projects", {"slug": "shop"})).status_code == 303


async def test_a_cross_site_post_is_refused_even_with_the_token(operator: Browser) -> None:
    answer = await operator.post(
        "/admin/projects", {"slug": "shop"}, headers={"sec-fetch-site": "cross-site"}
    )
    assert answer.status_code == 403 and "Cross-site" in answer.text
    same = await operator.post(
        "/admin/projects", {"slug": "shop"}, headers={"sec-fetch-site": "same-origin"}
    )
    assert same.status_code == 303


async def test_a_huge_or_unreadable_form_is_refused(operator: Browser) -> None:
    big = await operator.post("/admin/projects", {"slug": "x" * 70_000})
    assert big.status_code == 413
    garbage = await operator.http.post(
        "/admin/projects", content=b"slug=\xff\xfe&csrf=" + operator.csrf.encode()
    )
    assert garbage.status_code == 400
    assert admin.list_projects(operator.storage) == []


# Headers


async def test_every_console_answer_carries_the_security_headers(browser: Browser) -> None:
    answers = await visit_everything(browser)
    assert {a.status_code for a in answers} >= {200, 201, 303, 400, 401, 403, 404}
    for answer in answers:
        headers = answer.headers
        assert headers["content-security-policy"] == CSP, answer.url
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
        if "static" not in str(answer.url):
            assert headers["cache-control"] == "no-store", answer.url


def test_the_policy_allows_nothing_inline_nothing_foreign_and_no_framing() -> None:
    rules = dict(rule.strip().split(" ", 1) for rule in CSP.split(";"))
    assert rules["default-src"] == "'self'"
    assert rules["script-src"] == "'self'" and rules["style-src"] == "'self'"
    assert rules["frame-ancestors"] == "'none'"
    assert rules["form-action"] == "'self'" and rules["object-src"] == "'none'"
    assert "unsafe" not in CSP and "*" not in CSP and "data:" not in CSP


async def test_no_page_holds_what_the_policy_forbids(browser: Browser) -> None:
    for answer in await visit_everything(browser):
        if answer.headers["content-type"].startswith("text/html"):
            assert inline(answer.text) == [], answer.url


def test_no_template_holds_what_the_policy_forbids() -> None:
    for template in TEMPLATES.glob("*.html"):
        assert inline(template.read_text()) == [], template.name


# User-supplied values render inert


async def test_hostile_values_render_escaped_everywhere(operator: Browser) -> None:
    api = await operator.api("shop")
    euids = await api.register(*HOSTILE)
    euid = euids[0]
    values = {f"a{i}": v for i, v in enumerate(HOSTILE)}
    assert (await api.set(euid, "set", values)).json()["code"] == 0
    assert (await api.set(euid, "set", {"a0": HOSTILE[1]})).json()["code"] == 0
    await api.set(euid, "add", {"tags": HOSTILE[:3]})
    contact = "<script>alert(5)</script>@evil.example"
    assert (
        await api.post("/v1/user/contact", {"euid": euid, "contacts": {"email": contact}})
    ).json()["code"] == 0
    event = {"euid": euid, "event_name": "visit", "itime": 1_700_000_000_000}
    await api.post("/v1/event/report", {"data": [{**event, "properties": {"page": HOSTILE[0]}}]})
    await operator.get("/admin/projects/shop/datasources")
    await operator.post("/admin/projects/shop/datasources", {"name": HOSTILE[1]})

    pages = [
        await operator.get(f"/admin/users/{euid}"),
        await operator.get(f"/admin/users/{euids[1]}"),
        await operator.get("/admin/projects/shop/datasources"),
        await operator.get("/admin/audit"),
        await operator.get(
            "/admin/users", project="shop", key="identity:user_id", value=HOSTILE[0]
        ),
        await operator.get("/admin/users", project="shop", key="contact:email", value=HOSTILE[1]),
    ]
    for page in pages:
        assert page.status_code in (200, 303, 404), page.url
        assert inline(page.text) == [], page.url
        for raw in ("<script>alert", "<img src=x", "<svg onload", "<b>bold</b>"):
            assert raw not in page.text, (raw, page.url)
    user = pages[0].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in user
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in user
    assert "{{ 7*7 }}" in user and ">49<" not in user
    assert "&lt;script&gt;alert(5)&lt;/script&gt;@evil.example" in user
    assert "<dd>&#34;&gt;&lt;img src=x onerror=alert(2)&gt;</dd>" in pages[1].text
    assert '<td data-label="Name">&#34;&gt;&lt;img src=x onerror=alert(2)&gt;</td>' in pages[2].text
    assert pages[4].status_code == 303  # found by the hostile identity value itself
    assert 'value="&#34;&gt;&lt;img src=x onerror=alert(2)&gt;"' in pages[5].text

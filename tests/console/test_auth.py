"""Logging in to the console and out: sessions, their cookie, their end, and the limits on
guessing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.console import PAGES, PASSWORD, Browser, browser_on
from userprops import audit, operators
from userprops.clock import now_ms
from userprops.storage import Storage

FORMS = [
    "/admin/logout",
    "/admin/projects",
    "/admin/projects/shop/datasources",
    "/admin/projects/shop/datasources/0123456789abcdef01234567/rotate",
    "/admin/projects/shop/datasources/0123456789abcdef01234567/disable",
    "/admin/projects/shop/datasources/0123456789abcdef01234567/enable",
    "/admin/projects/shop/attributes",
    "/admin/projects/shop/segments",
    "/admin/projects/shop/segments/preview",
    "/admin/projects/shop/webhooks",
    "/admin/projects/shop/webhooks/1/disable",
    "/admin/projects/shop/webhooks/1/enable",
    "/admin/projects/shop/webhooks/1/delete",
    "/admin/projects/shop/webhooks/1/redeliver-dead",
    "/admin/projects/shop/webhooks/1/deliveries/1/redeliver",
]


def cookie_header(answer: httpx.Response, name: str) -> str:
    [found] = [c for c in answer.headers.get_list("set-cookie") if c.startswith(name + "=")]
    return found


def logged_out(answer: httpx.Response) -> bool:
    return answer.status_code == 303 and answer.headers["location"].startswith("/admin/login")


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_sends_a_visitor_without_a_session_to_the_login(
    browser: Browser, path: str
) -> None:
    answer = await browser.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/admin/login?next={path}"


async def test_the_login_keeps_the_query_of_the_page_asked_for(browser: Browser) -> None:
    answer = await browser.get("/admin/users", project="shop", key="euid", value="7")
    assert answer.headers["location"] == (
        "/admin/login?next=/admin/users%3Fproject%3Dshop%26key%3Deuid%26value%3D7"
    )
    await browser.get(answer.headers["location"])
    assert 'name="next" value="/admin/users?project=shop&amp;key=euid&amp;value=7"' in (
        browser.pages[-1].text
    )


@pytest.mark.parametrize("path", FORMS)
async def test_every_form_is_refused_without_a_session(browser: Browser, path: str) -> None:
    await browser.get("/admin/login")  # a valid login-form token is no session token
    answer = await browser.post(path, {"slug": "x", "name": "x", "type": "STRING"})
    assert answer.status_code == 403
    assert "not logged in" in answer.text


async def test_an_htmx_request_without_a_session_is_sent_to_the_login(browser: Browser) -> None:
    answer = await browser.http.get("/admin/users/1", headers={"hx-request": "true"})
    assert answer.status_code == 401
    assert answer.headers["hx-redirect"] == "/admin/login?next=/admin/users/1"


async def test_logging_in_starts_a_session_in_a_strict_httponly_cookie(browser: Browser) -> None:
    answer = await browser.login()
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/"
    cookie = cookie_header(answer, "userprops_console")
    assert "; Path=/admin;" in cookie and "; HttpOnly" in cookie and "; SameSite=Strict" in cookie
    assert "; Max-Age=43200;" in cookie
    assert "Secure" not in cookie  # plain HTTP: a browser would not send it back
    assert cookie_header(answer, "userprops_console_login").startswith("userprops_console_login=; ")
    overview = await browser.get("/admin/")
    assert overview.status_code == 200 and "Overview" in overview.text
    assert "alice" in overview.text


async def test_the_cookies_are_secure_over_tls(
    storage_url: str, storage: Storage, alice: str
) -> None:
    async with browser_on(storage_url, storage, base_url="https://console.test") as b:
        answer = await b.login()
        assert answer.status_code == 303
        assert cookie_header(answer, "userprops_console").endswith("; Secure")
        assert cookie_header(answer, "userprops_console_login").endswith("; Secure")


async def test_the_cookies_are_secure_behind_a_tls_proxy_when_the_setting_says_so(
    storage_url: str, storage: Storage, alice: str
) -> None:
    async with browser_on(storage_url, storage, console_secure_cookie=True) as b:
        form = await b.get("/admin/login")
        assert cookie_header(form, "userprops_console_login").endswith("; Secure")


async def test_the_session_lasts_as_long_as_the_setting(
    storage_url: str, storage: Storage, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with browser_on(storage_url, storage, console_session_ttl=600.0) as b:
        answer = await b.login()
        assert "; Max-Age=600;" in cookie_header(answer, "userprops_console")
        assert (await b.get("/admin/projects")).status_code == 200
        later = now_ms() + 601_000
        monkeypatch.setattr(operators, "now_ms", lambda: later)
        assert logged_out(await b.get("/admin/projects"))


async def test_a_wrong_password_is_refused_and_audited(browser: Browser) -> None:
    answer = await browser.login(password=PASSWORD + "!")
    assert answer.status_code == 401
    assert "Wrong name or password." in answer.text
    assert not any(
        c.startswith("userprops_console=") for c in answer.headers.get_list("set-cookie")
    )
    assert logged_out(await browser.get("/admin/"))
    entries, _ = audit.page(browser.storage, None, 10)
    assert next((e.actor, e.action, e.details) for e in entries) == (
        "alice",
        "login.failed",
        {"address": "127.0.0.1"},
    )


async def test_an_unknown_operator_gets_the_same_answer_and_is_not_audited(
    browser: Browser,
) -> None:
    await browser.get("/admin/login")
    wrong = await browser.post("/admin/login", {"name": "alice", "password": "not it at all"})
    unknown = await browser.post("/admin/login", {"name": "mallory", "password": "not it at all"})
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.replace("mallory", "alice") == wrong.text
    entries, _ = audit.page(browser.storage, None, 10)
    assert "mallory" not in repr(entries)


async def test_the_login_takes_the_operator_back_to_the_page_asked_for(browser: Browser) -> None:
    await browser.get("/admin/login", next="/admin/audit?before=5")
    answer = await browser.post(
        "/admin/login", {"name": "alice", "password": PASSWORD, "next": "/admin/audit?before=5"}
    )
    assert answer.headers["location"] == "/admin/audit?before=5"


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/admin", "//evil.example/admin", "/admin\\@evil", "/v1/changes", ""],
)
async def test_the_login_never_sends_the_operator_elsewhere(browser: Browser, target: str) -> None:
    await browser.get("/admin/login")
    answer = await browser.post(
        "/admin/login", {"name": "alice", "password": PASSWORD, "next": target}
    )
    assert answer.headers["location"] == "/admin/"


async def test_a_logged_in_operator_skips_the_login_form(operator: Browser) -> None:
    answer = await operator.get("/admin/login", next="/admin/projects")
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/projects"


async def test_logging_out_ends_the_session_for_good(operator: Browser) -> None:
    stolen = operator.http.cookies["userprops_console"]
    answer = await operator.post("/admin/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/login"
    assert cookie_header(answer, "userprops_console").startswith("userprops_console=; ")
    assert "Max-Age=0" in cookie_header(answer, "userprops_console")
    assert logged_out(await operator.get("/admin/"))
    # The cookie itself, replayed, is worth nothing now.
    operator.http.cookies.set("userprops_console", stolen, path="/admin")
    assert logged_out(await operator.get("/admin/"))
    entries, _ = audit.page(operator.storage, None, 2)
    assert [e.action for e in entries] == ["logout", "login"]


async def test_deleting_the_operator_ends_its_sessions(operator: Browser) -> None:
    operators.delete(operator.storage, "alice")
    assert logged_out(await operator.get("/admin/"))
    assert (await operator.post("/admin/projects", {"slug": "x"})).status_code == 403


async def test_a_new_password_ends_the_sessions(operator: Browser) -> None:
    operators.reset_password(operator.storage, "alice", "another long passphrase")
    assert logged_out(await operator.get("/admin/"))
    assert (await operator.login()).status_code == 401
    assert (await operator.login(password="another long passphrase")).status_code == 303


async def test_a_session_of_a_deleted_and_recreated_operator_stays_ended(
    operator: Browser,
) -> None:
    operators.delete(operator.storage, "alice")
    operators.create(operator.storage, "alice", PASSWORD)
    assert logged_out(await operator.get("/admin/"))


@pytest.mark.parametrize(
    "forge",
    [
        lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"),  # the signature
        lambda v: "A" + v[1:] if not v.startswith("A") else "B" + v[1:],  # the token
        lambda v: v.partition(".")[0],  # no signature
        lambda v: "",
        lambda v: "garbage",
    ],
)
async def test_a_tampered_session_cookie_is_no_session(operator: Browser, forge: object) -> None:
    value = operator.http.cookies["userprops_console"]
    operator.http.cookies.set("userprops_console", forge(value), path="/admin")  # type: ignore[operator]
    assert logged_out(await operator.get("/admin/"))


async def test_logins_are_limited_per_address(
    storage_url: str, storage: Storage, alice: str
) -> None:
    async with browser_on(
        storage_url, storage, console_login_burst=3.0, console_login_rate=0.01
    ) as b:
        for _ in range(3):
            assert (await b.login(password="wrong password")).status_code == 401
        limited = await b.login()  # even the right password: the address must wait
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0
        assert "Too many login attempts" in limited.text
        assert logged_out(await b.get("/admin/"))


async def test_logins_are_limited_per_operator_name_across_addresses(
    storage_url: str, storage: Storage, alice: str
) -> None:
    limits: dict[str, Any] = {"console_login_burst": 3.0, "console_login_rate": 0.01}
    async with browser_on(storage_url, storage, **limits) as b:
        for i in range(3):
            await b.move_to(f"10.0.0.{i}")
            assert (await b.login(password="wrong password")).status_code == 401
        await b.move_to("10.0.0.99")
        assert (await b.login()).status_code == 429
        assert (await b.login(name="bob")).status_code == 401  # another name is not limited


async def test_the_login_form_needs_its_own_token(browser: Browser) -> None:
    without = await browser.http.post("/admin/login", data={"name": "alice", "password": PASSWORD})
    assert without.status_code == 403
    await browser.get("/admin/login")
    wrong = await browser.post("/admin/login", {"name": "alice", "password": PASSWORD}, csrf="x")
    assert wrong.status_code == 403
    browser.http.cookies.clear()  # the token without the cookie it belongs to
    stale = await browser.post("/admin/login", {"name": "alice", "password": PASSWORD})
    assert stale.status_code == 403


async def test_names_no_operator_may_have_share_one_bucket(
    storage_url: str, storage: Storage, alice: str
) -> None:
    limits: dict[str, Any] = {"console_login_burst": 3.0, "console_login_rate": 0.01}
    async with browser_on(storage_url, storage, **limits) as b:
        for i in range(4):
            await b.move_to(f"10.0.1.{i}")
            answer = await b.login(name=f"Not A Name {i} " + "x" * 1000)
            assert answer.status_code == (429 if i == 3 else 401)
        assert (await b.login()).status_code == 303  # alice's own bucket is full

"""The console in a real browser: headless Chromium from Debian's packages, driven by
Playwright, against a real ``userprops serve`` with an operator made by the CLI.

It walks what an operator does (log in, create a project and a data source and copy its
secret, define an attribute, find a user and read its history, rotate, disable, build a
segment watching its count change, make a webhook endpoint and read its deliveries, log
out), at desktop and at phone width, and saves a screenshot of every page in
``screenshots/console/`` (not committed; ``CONSOLE_SCREENSHOTS`` names another folder).
With ``CONSOLE_DOC_IMAGES=1`` it also refreshes the few images docs/console.md shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serverproc import Server

# A real server and a real browser. The module's tests share one server, and the later
# ones visit what the first made (its segment, its webhook): under pytest-xdist they run
# on one worker (scripts/test: --dist loadfile).
pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).parents[2]
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS", ROOT / "screenshots" / "console"))
DOC_IMAGES = ROOT / "docs" / "images"
PASSWORD = "a browser's long passphrase"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']

if not CHROMIUM.exists():
    if os.environ.get("CI"):  # scripts/test installs it; CI must not skip the browser
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install chromium")
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd = tmp_path_factory.mktemp("console")
    subprocess.run(
        [sys.executable, "-m", "userprops", "operator", "create", "alice", "--password-stdin"],
        input=PASSWORD + "\n",
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    served = Server(cwd, env={"USERPROPS_AUTH_CACHE_TTL": "0"})
    yield served
    served.stop_cleanly()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


class Operator:
    """One browser window of the operator, which remembers what the browser complained
    about (a Content-Security-Policy violation is reported on the console)."""

    def __init__(self, chromium: object, base: str, viewport: dict[str, int], label: str) -> None:
        self.base = base
        self.label = label
        self.context = chromium.new_context(viewport=viewport)  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.complaints: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.complaints.append(str(error)))
        self.page.on("dialog", self._dialog)

    def _console(self, message: object) -> None:
        text, where = message.text, message.location.get("url", "")  # type: ignore[attr-defined]
        if message.type not in ("error", "warning"):  # type: ignore[attr-defined]
            return
        if text.startswith("Failed to load resource") and "/admin/login" in where:
            return  # the 401 of a wrong password, as Chromium reports every 4xx page
        self.complaints.append(f"{text} ({where})")

    def _dialog(self, dialog: object) -> None:
        self.dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SHOTS / f"{self.label}-{name}.png", full_page=True)

    def doc_image(self, name: str) -> None:
        if os.environ.get("CONSOLE_DOC_IMAGES") == "1":
            DOC_IMAGES.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=DOC_IMAGES / f"console-{name}.png")

    def log_in(self, password: str = PASSWORD) -> None:
        self.page.fill("input[name=name]", "alice")
        self.page.fill("input[name=password]", password)
        self.page.click("button:has-text('Log in')")
        self.page.wait_for_load_state()

    def fits(self) -> bool:
        """Nothing sticks out sideways: the page needs no horizontal scrolling."""
        return bool(self.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))

    def close(self) -> None:
        self.context.close()


def api_code(server: Server, auth: tuple[str, str], method: str, path: str, **kw: object) -> int:
    answer = httpx.request(method, server.url + path, auth=auth, timeout=10, **kw)  # type: ignore[arg-type]
    return int(answer.json()["code"])


def test_an_operator_does_the_daily_work_in_a_real_browser(
    server: Server, chromium: object
) -> None:
    me = Operator(chromium, server.url, DESKTOP, "desktop")
    page = me.page

    # Every page asks for a login first, and a wrong password gets nobody in.
    me.goto("/admin/projects")
    assert page.url == server.url + "/admin/login?next=/admin/projects"
    me.shot("login")
    me.doc_image("login")
    me.log_in("not the password at all")
    assert page.get_by_role("alert").inner_text() == "Wrong name or password."
    me.log_in()
    assert page.url == server.url + "/admin/projects"

    # A project and a data source, whose secret is shown once.
    page.fill("input[name=slug]", "shop")
    page.fill("input[name=timezone]", "Asia/Shanghai")
    page.click("button:has-text('Create project')")
    assert page.url == server.url + "/admin/projects/shop/datasources"
    page.fill("input[name=name]", "crm")
    page.click("button:has-text('Create data source')")
    reveal = page.locator(".reveal")
    key, secret = (reveal.locator("code.select").nth(i).inner_text() for i in (0, 1))
    assert re.fullmatch("[0-9a-f]{24}", key) and re.fullmatch("[0-9a-f]{24}", secret)
    me.shot("datasource-created")
    me.doc_image("datasource-created")
    me.goto("/admin/projects/shop/datasources")
    assert key in page.content() and secret not in page.content()

    # The business system writes through the API with it, some of it hostile.
    auth = (key, secret)
    body: dict[str, object] = {"identity_name": "user_id", "identity_values": ["u-1", HOSTILE[1]]}
    answer = httpx.post(server.url + "/v1/user/register", json=body, auth=auth, timeout=10)
    euid, other = (item["euid"] for item in answer.json()["data"])
    values = {"plan": "gold", "score": 12.5, "vip": True, "note": HOSTILE[0], "bio": HOSTILE[1]}
    prop = "/v1/user/property"
    assert (
        api_code(
            server, auth, "POST", prop, json={"euid": euid, "type": "set", "properties": values}
        )
        == 0
    )
    for _ in range(30):
        body = {"euid": euid, "type": "increase", "properties": {"orders": 1}}
        assert api_code(server, auth, "POST", prop, json=body) == 0
    contact = {"euid": euid, "contacts": {"email": "u1@example.org"}}
    assert api_code(server, auth, "POST", "/v1/user/contact", json=contact) == 0
    event = {"euid": euid, "event_name": "purchase", "itime": 1_700_000_000_000,
             "properties": {"amount": 99, "sku": HOSTILE[0]}}  # fmt: skip
    assert api_code(server, auth, "POST", "/v1/event/report", json={"data": [event]}) == 0

    # The schema: define an attribute.
    page.click("nav.tabs >> text=Schema")
    page.fill("input[name=name]", "lifetime_value")
    page.select_option("select[name=type]", "NUMBER")
    page.click("button:has-text('Define')")
    row = page.locator("#attr-lifetime_value")
    assert "NUMBER" in row.inner_text()
    me.shot("attributes")

    # Find the user by identity, then read its page and history.
    page.click("nav.nav >> text=Users")
    me.shot("lookup")
    page.select_option("select[name=project]", "shop")
    page.select_option("select[name=key]", "identity:user_id")
    page.fill("input[name=value]", "u-1")
    page.click("button:has-text('Find')")
    assert page.url == f"{server.url}/admin/users/{euid}"
    text = page.locator("main").inner_text()
    assert "gold" in text and "u1@example.org" in text and "purchase" in text
    assert HOSTILE[0] in text and HOSTILE[1] in text  # shown as text, not run
    assert page.locator("main img, main script").count() == 0
    history = page.locator("#history")
    assert "29 → 30" in history.inner_text() and "crm" in history.inner_text()
    me.shot("user")
    me.doc_image("user")
    page.click("text=Older changes")  # htmx: only the history is replaced
    # Waits (expect retries) until the older page has replaced the newest, however long
    # the request and the swap take on a busy machine.
    sync_api.expect(history).to_contain_text("none → gold")
    sync_api.expect(history).not_to_contain_text("29 → 30")
    assert page.url == f"{server.url}/admin/users/{euid}"
    me.goto(f"/admin/users/{other}")
    assert HOSTILE[1] in page.locator("dl.pairs").inner_text()
    me.goto("/admin/projects/shop/users")
    me.shot("project-users")

    # Rotate the secret (after a confirmation): the new one is shown once, the old one fails.
    me.goto("/admin/projects/shop/datasources")
    page.click(f"#ds-{key} >> text=Rotate secret")
    page.wait_for_selector(".reveal")
    new_secret = page.locator(".reveal code.select").nth(1).inner_text()
    assert new_secret != secret and me.dialogs[-1].startswith("Give crm a new secret?")
    me.shot("datasource-rotated")
    assert api_code(server, auth, "GET", prop, params={"euid": euid}) == 40050
    auth = (key, new_secret)
    assert api_code(server, auth, "GET", prop, params={"euid": euid}) == 0

    # Disable it, and enable it again.
    page.click(f"#ds-{key} >> text=Disable")
    page.wait_for_selector(f"#ds-{key} >> text=disabled")
    assert api_code(server, auth, "GET", prop, params={"euid": euid}) == 40050
    page.click(f"#ds-{key} >> text=Enable")
    page.wait_for_selector(f"#ds-{key} >> text=enabled")
    assert api_code(server, auth, "GET", prop, params={"euid": euid}) == 0
    me.shot("datasources")

    # The overview counts the writes; the audit log has what alice did.
    page.click("nav.nav >> text=Overview")
    assert page.locator(".figure").nth(1).inner_text() == "35"  # 5 values, 30 increases
    assert page.locator("svg rect.bar").count() == 60
    me.shot("overview")
    me.doc_image("overview")
    page.click("nav.nav >> text=Projects")
    me.shot("projects")
    page.click("nav.nav >> text=Audit log")
    audit = page.locator("main").inner_text()
    for action in ("datasource.create", "datasource.rotate", "datasource.disable", "login"):
        assert action in audit
    me.shot("audit")

    # A segment: typing a condition shows the count and the first members as it changes.
    me.goto("/admin/projects/shop/segments")
    page.fill("input[name=name]", "gold")
    preview = page.locator("#preview")
    page.fill("textarea[name=where]", '{"property": "plan", "op": "eq", "value": "silver"}')
    page.wait_for_selector("#preview >> text=0 users match")
    page.fill("textarea[name=where]", '{"property": "plan", "op": "contains", "value": 1}')
    page.wait_for_selector("#preview .error")
    assert "55004: where (plan contains)" in preview.inner_text()
    page.fill("textarea[name=where]", '{"property": "plan", "op": "eq", "value": "gold"}')
    page.wait_for_selector("#preview >> text=1 user matches")
    assert preview.locator(f"a[href='/admin/users/{euid}']").count() == 1
    assert page.url == server.url + "/admin/projects/shop/segments"  # nothing but the preview
    me.shot("segment-builder")
    me.doc_image("segment-builder")
    page.click("button:has-text('Save segment')")
    assert page.url == server.url + "/admin/projects/shop/segments/gold"
    assert page.locator("#members a").all_inner_texts() == [str(euid)]
    me.shot("segment")
    me.goto(f"/admin/users/{euid}")
    page.click("#segments >> text=gold")
    assert page.url == server.url + "/admin/projects/shop/segments/gold"

    # A webhook endpoint: its secret shown once, its deliveries failing (nobody listens on
    # port 9), then disabled after a confirmation.
    page.click("nav.tabs >> text=Webhooks")
    page.fill("input[name=url]", "http://127.0.0.1:9/hooks")
    page.fill("input[name=properties]", "score")
    page.click("button:has-text('Create endpoint')")
    hook_secret = page.locator(".reveal code.secret").inner_text()
    assert hook_secret.startswith("whsec_")
    me.shot("webhook-created")
    body = {"euid": euid, "type": "increase", "properties": {"score": 1}}
    assert api_code(server, auth, "POST", prop, json=body) == 0
    me.goto("/admin/projects/shop/webhooks")
    assert hook_secret not in page.content()
    page.click("#webhook-1 >> text=Deliveries")
    for _ in range(50):  # the server's deliverer makes and tries the delivery
        if any(page.locator("#deliveries td[data-label='Last attempt']").all_inner_texts()):
            break
        page.wait_for_timeout(200)
        page.reload()
    assert "pending" in page.locator("#deliveries tbody").inner_text()
    me.shot("webhook")
    me.doc_image("webhook")
    page.click("nav.tabs >> text=Webhooks")
    page.click("#webhook-1 >> text=Disable")
    page.wait_for_selector("#webhook-1 >> text=disabled by an operator")
    me.shot("webhooks")
    me.doc_image("webhooks")
    page.click("nav.nav >> text=Audit log")
    audit = page.locator("main").inner_text()
    for action in ("segment.save", "webhook.create", "webhook.disable"):
        assert action in audit

    # Log out: every page asks for a login again.
    page.click("button:has-text('Log out')")
    assert page.url == server.url + "/admin/login"
    me.goto("/admin/")
    assert page.url.startswith(server.url + "/admin/login")

    assert me.dialogs == [
        "Give crm a new secret? The current one stops working.",
        "Disable crm? Its requests will be refused.",
        "Disable webhook 1? Nothing is sent to it until it is enabled; its changes wait.",
    ]
    assert me.complaints == []  # no CSP violation, no script error
    me.close()


PAGES = [
    ("overview", "/admin/"),
    ("projects", "/admin/projects"),
    ("datasources", "/admin/projects/shop/datasources"),
    ("attributes", "/admin/projects/shop/attributes"),
    ("project-users", "/admin/projects/shop/users"),
    ("lookup", "/admin/users"),
    ("user", "/admin/users/1"),
    ("segments", "/admin/projects/shop/segments"),
    ("segment", "/admin/projects/shop/segments/gold"),
    ("webhooks", "/admin/projects/shop/webhooks"),
    ("webhook", "/admin/projects/shop/webhooks/1"),
    ("audit", "/admin/audit"),
]


def test_every_page_fits_a_phone(server: Server, chromium: object) -> None:
    me = Operator(chromium, server.url, PHONE, "phone")
    me.goto("/admin/")
    assert me.fits()
    me.shot("login")
    me.log_in()
    me.goto("/admin/projects")
    if "shop" not in me.page.content():  # when run alone
        me.page.fill("input[name=slug]", "shop")
        me.page.click("button:has-text('Create project')")
    for name, path in PAGES:
        me.goto(path)
        me.shot(name)
        assert me.fits(), name
    me.goto("/admin/projects/shop/datasources")
    me.page.fill("input[name=name]", "phone")
    me.page.click("button:has-text('Create data source')")
    assert me.fits()
    me.shot("datasource-created")
    me.doc_image("phone-datasource-created")
    assert me.complaints == []
    me.close()

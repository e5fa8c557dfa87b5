"""The console's webhook pages over HTTP: endpoints with their state, made (the secret
shown once), disabled, enabled and deleted; deliveries, dead letters, and redelivery. No
deliverer runs: deliveries are made and attempted in storage (tests/support/webhooks.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest

from tests.console.test_pages import actions
from tests.console.test_security import HOSTILE, inline
from tests.support.console import Browser, browser_on
from tests.support.webhooks import attempt_all, changes
from userprops import admin, audit, webhooks
from userprops.storage import Storage


@pytest.fixture
async def browser(storage_url: str, storage: Storage, alice: str) -> AsyncIterator[Browser]:
    """The console with no deliverer of its own."""
    async with browser_on(storage_url, storage, deliveries=False) as b:
        yield b


@pytest.fixture
def pid(storage: Storage) -> int:
    return admin.create_project(storage, "shop").id


def row(html: str, webhook_id: int) -> str:
    found = re.search(rf'<tr id="webhook-{webhook_id}">.*?</tr>', html, re.S)
    assert found, html
    return found[0]


def delivery_rows(html: str) -> list[tuple[int, str]]:
    """(seq, status) of each delivery shown."""
    return [
        (int(seq), status)
        for seq, status in re.findall(
            r'data-label="Change">#(\d+)</td>.*?class="status-(\w+)"', html, re.S
        )
    ]


async def test_the_webhooks_page_shows_each_endpoints_state_and_deliveries(
    operator: Browser, pid: int
) -> None:
    failing = webhooks.create(operator.storage, "shop", "http://127.0.0.1:9/a").webhook.id
    secret_url = "http://user:pw@127.0.0.1:9/b"
    off = webhooks.create(operator.storage, "shop", secret_url, ["plan", "city"]).webhook.id
    changes(operator.storage, pid, 1, 2)
    attempt_all(operator.storage, "retry")
    webhooks.set_enabled(operator.storage, off, False)
    page = await operator.get("/admin/projects/shop/webhooks")
    assert page.status_code == 200 and 'aria-current="page">Webhooks</a>' in page.text
    first = row(page.text, failing)
    assert "enabled, failing since 2033-05-18T03:33:20.000Z (2 failed)" in first
    assert "every change" in first and '<td class="num" data-label="Pending">2</td>' in first
    second = row(page.text, off)
    assert "disabled: disabled by an operator" in second and "/enable" in second
    assert "<code>city</code>, <code>plan</code>" in second
    assert "http://user:***@127.0.0.1:9/b" in second and "pw@" not in page.text


async def test_a_new_endpoint_shows_its_secret_once_and_is_audited(
    operator: Browser, pid: int
) -> None:
    await operator.get("/admin/projects/shop/webhooks")
    made = await operator.post(
        "/admin/projects/shop/webhooks",
        {"url": "https://hooks.example.com/in", "properties": "plan, city  vip"},
    )
    assert made.status_code == 201 and "shown only this once" in made.text
    found = re.search(r"<dt>secret</dt><dd><code[^>]*>(whsec_[A-Za-z0-9+/=]+)</code>", made.text)
    assert found, made.text
    [doc] = webhooks.listing(operator.storage, "shop")
    assert doc["properties"] == ["city", "plan", "vip"]
    with operator.storage.read() as tx:
        stored = tx.get_webhook(doc["id"])
    assert stored is not None and stored.secret == found[1]
    again = await operator.get("/admin/projects/shop/webhooks")
    assert "https://hooks.example.com/in" in again.text and found[1] not in again.text
    assert ("alice", "webhook.create", str(doc["id"])) in actions(operator.storage)
    assert found[1] not in repr(audit.page(operator.storage, None, 100))


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"url": "ftp://example.com/x"}, "must be http:// or https://"),
        ({"url": "http://169.254.169.254/latest"}, "link-local"),
        ({"url": "https://example.com/x", "properties": "Plan"}, "name must match"),
    ],
)
async def test_a_bad_endpoint_is_refused_with_the_reason(
    operator: Browser, pid: int, form: dict[str, str], message: str
) -> None:
    await operator.get("/admin/projects/shop/webhooks")
    answer = await operator.post("/admin/projects/shop/webhooks", form)
    assert answer.status_code == 400 and message in answer.text
    assert f'value="{form["url"]}"' in answer.text  # the form keeps what was typed
    assert webhooks.listing(operator.storage, "shop") == []


async def test_disabling_enabling_and_deleting_an_endpoint(operator: Browser, pid: int) -> None:
    wid = webhooks.create(operator.storage, "shop", "http://127.0.0.1:9/a").webhook.id
    await operator.get("/admin/projects/shop/webhooks")
    base = f"/admin/projects/shop/webhooks/{wid}"
    off = await operator.post(f"{base}/disable")
    assert off.status_code == 303
    assert off.headers["location"] == f"/admin/projects/shop/webhooks#webhook-{wid}"
    assert webhooks.listing(operator.storage, "shop")[0]["enabled"] is False
    assert (await operator.post(f"{base}/enable")).status_code == 303
    assert webhooks.listing(operator.storage, "shop")[0]["enabled"] is True
    gone = await operator.post(f"{base}/delete")
    assert gone.status_code == 303 and gone.headers["location"] == "/admin/projects/shop/webhooks"
    assert webhooks.listing(operator.storage, "shop") == []
    assert [a for _, a, t in actions(operator.storage) if t == str(wid)] == [
        "webhook.create",
        "webhook.disable",
        "webhook.enable",
        "webhook.delete",
    ]
    assert (await operator.get(base)).status_code == 404


async def test_an_endpoint_is_acted_on_only_under_its_own_project(
    operator: Browser, pid: int
) -> None:
    admin.create_project(operator.storage, "blog")
    wid = webhooks.create(operator.storage, "blog", "http://127.0.0.1:9/a").webhook.id
    await operator.get("/admin/projects/shop/webhooks")
    base = f"/admin/projects/shop/webhooks/{wid}"
    assert (await operator.get(base)).status_code == 404
    for action in ("disable", "delete", "redeliver-dead", "deliveries/1/redeliver"):
        assert (await operator.post(f"{base}/{action}")).status_code == 404, action
    assert webhooks.listing(operator.storage, "blog")[0]["enabled"] is True


async def test_deliveries_and_dead_letters_are_shown_and_redelivered(
    operator: Browser, pid: int
) -> None:
    wid = webhooks.create(operator.storage, "shop", "http://127.0.0.1:9/a").webhook.id
    other = webhooks.create(operator.storage, "shop", "http://127.0.0.1:9/b").webhook.id
    changes(operator.storage, pid, 1, 2, 1)
    attempt_all(operator.storage, "dead")  # seqs 1 and 2 die; seq 3 (user 1) becomes due
    base = f"/admin/projects/shop/webhooks/{wid}"
    page = await operator.get(base)
    assert page.status_code == 200
    assert delivery_rows(page.text) == [(3, "pending"), (2, "dead"), (1, "dead")]
    assert "HTTP 500" in page.text and "dead 2033-05-18T03:33:20.000Z" in page.text
    assert 'href="/admin/users/2"' in page.text
    dead = await operator.get(base, status="dead")
    assert "Dead letters" in dead.text
    assert delivery_rows(dead.text) == [(2, "dead"), (1, "dead")]
    assert "Redeliver all 2 dead letters" in dead.text

    [second] = [d for d in webhooks.deliveries(operator.storage, wid, "dead", 10) if d["seq"] == 2]
    one = await operator.post(f"{base}/deliveries/{second['id']}/redeliver", {"status": "dead"})
    assert one.status_code == 303
    assert one.headers["location"] == f"{base}?status=dead&queued=1#deliveries"
    shown = await operator.get(one.headers["location"])
    assert "Queued 1 delivery again" in shown.text
    assert delivery_rows(shown.text) == [(1, "dead")]
    everything = await operator.post(f"{base}/redeliver-dead")
    assert everything.headers["location"] == f"{base}?queued=1#deliveries"
    statuses = [d["status"] for d in webhooks.deliveries(operator.storage, wid, None, 10)]
    assert statuses == ["pending", "pending", "pending"]
    [theirs] = webhooks.deliveries(operator.storage, other, None, 1)
    foreign = await operator.post(f"{base}/deliveries/{theirs['id']}/redeliver")
    assert foreign.status_code == 404
    assert [(a, t) for _, a, t in actions(operator.storage) if a == "webhook.redeliver"] == [
        ("webhook.redeliver", str(wid)),
        ("webhook.redeliver", str(wid)),
    ]


async def test_hostile_urls_and_errors_render_escaped(operator: Browser, pid: int) -> None:
    wid = webhooks.create(operator.storage, "shop", f"https://x.example/{HOSTILE[0]}").webhook.id
    changes(operator.storage, pid, 1)
    attempt_all(operator.storage, "dead", error=HOSTILE[1])
    await operator.get("/admin/projects/shop/webhooks")
    pages = [
        await operator.get("/admin/projects/shop/webhooks"),
        await operator.get(f"/admin/projects/shop/webhooks/{wid}"),
        await operator.post(
            "/admin/projects/shop/webhooks", {"url": HOSTILE[1], "properties": HOSTILE[2]}
        ),
    ]
    for page in pages:
        assert inline(page.text) == [], page.url
        for raw in ("<script>alert", "<img src=x", "<svg onload", "<b>bold</b>"):
            assert raw not in page.text, (raw, page.url)
    assert "https://x.example/&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0].text
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in pages[1].text


@pytest.mark.parametrize("token", ["", "forged"])
async def test_every_webhook_form_without_the_sessions_token_is_403_and_does_nothing(
    operator: Browser, pid: int, token: str
) -> None:
    wid = webhooks.create(operator.storage, "shop", "http://127.0.0.1:9/a").webhook.id
    changes(operator.storage, pid, 1)
    attempt_all(operator.storage, "dead")
    [dead] = webhooks.deliveries(operator.storage, wid, None, 1)
    await operator.get("/admin/projects/shop/webhooks")
    base = f"/admin/projects/shop/webhooks/{wid}"
    for path in (
        "/admin/projects/shop/webhooks",
        f"{base}/disable",
        f"{base}/delete",
        f"{base}/redeliver-dead",
        f"{base}/deliveries/{dead['id']}/redeliver",
    ):
        answer = await operator.post(path, {"url": "http://127.0.0.1:9/b"}, csrf=token)
        assert answer.status_code == 403 and "security token" in answer.text, path
    [doc] = webhooks.listing(operator.storage, "shop")
    assert doc["enabled"] and doc["deliveries"]["dead"] == 1
    assert [a for _, a, _ in actions(operator.storage) if a.startswith("webhook.")] == [
        "webhook.create"
    ]

"""The console's pages: each handler reads its input, calls the core (:mod:`userprops.admin`,
:mod:`userprops.operators`, :mod:`userprops.audit`) in a worker thread, and renders a
template. No SQL and no business rules here.

Forms post back and answer with a redirect (303) to the page that shows the result, except
where a secret is shown: creating a data source and rotating its secret answer the page
with the secret in it, once, and nothing else ever shows it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from userprops import admin, audit, operators
from userprops.clock import now_ms
from userprops.console import sessions
from userprops.console.app import Answer, Console, PageError, Request, route
from userprops.console.chart import MINUTE, per_minute
from userprops.console.sessions import PATH
from userprops.contacts import CONTACT_NAMES
from userprops.errors import Conflict, InvalidParameters, UserNotFound
from userprops.history import HistoryQuery, decode_cursor
from userprops.schema import AttrType, SchemaMode
from userprops.storage.base import DataSource
from userprops.users import IDENTITY_NAMES

HISTORY_PAGE = 25
USERS_PAGE = 100
CHART_MINUTES = 60


@dataclass(frozen=True)
class Link:
    label: str
    path: str


@dataclass(frozen=True)
class Revealed:
    """A secret shown on the answer to the form that made it, and never again:
    ``pairs`` are (label, value), the secret last."""

    headline: str
    pairs: tuple[tuple[str, str], ...]
    note: str = "It is shown only this once; userprops keeps nothing but a hash of it."


NAV = (
    Link("Overview", "/"),
    Link("Projects", "/projects"),
    Link("Users", "/users"),
    Link("Audit log", "/audit"),
)
"""The top navigation, paths below ``/admin``. Pages about all projects slot in here."""

PROJECT_TABS = (
    Link("Data sources", "datasources"),
    Link("Schema", "attributes"),
    Link("Users", "users"),
    Link("Segments", "segments"),
    Link("Webhooks", "webhooks"),
)
"""The tabs of a project's pages, paths below ``/admin/projects/SLUG/``. Pages about one
project slot in here, with their routes in :data:`userprops.console.routes.ROUTES`."""

LOOKUP_KEYS = (
    ("euid", "EUID"),
    *((f"identity:{n}", f"identity {n}") for n in IDENTITY_NAMES),
    *((f"contact:{n}", f"contact {n}") for n in CONTACT_NAMES),
)


async def project_page(
    c: Console, r: Request, template: str, tab: str, status: int = 200, **context: Any
) -> Answer:
    """A page of the project of the URL, under its tabs; 404 when there is no project."""
    project = await c.run(admin.get_project, r.params["slug"])
    return c.page(r, template, status, project=project, tabs=PROJECT_TABS, tab=tab, **context)


def redirect(path: str) -> Answer:
    return Answer(303, headers=[("location", PATH + path)])


def _form_error(error: InvalidParameters | Conflict | ValueError) -> tuple[int, str]:
    if isinstance(error, Conflict):
        return 409, error.detail
    if isinstance(error, InvalidParameters):
        return 400, error.detail
    return 400, str(error)


# Logging in and out


def _next_path(raw: str | None) -> str:
    """Where to go after the login: a console path given by ``next``, else the overview
    (never another site)."""
    if raw and raw.startswith(PATH) and "\\" not in raw and raw.isprintable():
        parts = urlsplit(raw)
        if not parts.scheme and not parts.netloc and parts.path.startswith(PATH):
            return raw
    return PATH + "/"


async def login_form(c: Console, r: Request) -> Answer:
    if await c.session(r) is not None:
        return Answer(303, headers=[("location", _next_path(r.query.get("next")))])
    signer = await c.signer()
    nonce = sessions.new_nonce()
    cookie = c.cookie(r, sessions.LOGIN_COOKIE, signer.sign("login", nonce), sessions.LOGIN_SECONDS)
    r.csrf = signer.login_csrf(nonce)
    next_path = r.query.get("next", "")
    return c.page(r, "login.html", headers=[cookie], next=next_path, name="", error=None)


async def login(c: Console, r: Request) -> Answer:
    name, password = r.form.get("name", "").strip(), r.form.get("password", "")
    r.csrf = r.form.get("csrf", "")  # checked: the same nonce serves a second try
    next_path = r.form.get("next", "")
    wait = c.login_limited(r.client, name)
    if wait is not None:
        message = f"Too many login attempts; try again in {wait} seconds."
        headers = [("retry-after", str(wait))]
        return c.page(r, "login.html", 429, headers, error=message, next=next_path, name=name)
    operator = await c.run(operators.verify, name, password)
    if operator is None:
        await c.run(operators.record_failed_login, name, r.client)
        message = "Wrong name or password."
        return c.page(r, "login.html", 401, error=message, next=next_path, name=name)
    ttl = max(1, round(c.settings.console_session_ttl))
    session = await c.run(operators.start_session, operator, ttl, r.client)
    signer = await c.signer()
    return Answer(
        303,
        headers=[
            ("location", _next_path(next_path)),
            c.cookie(r, sessions.SESSION_COOKIE, signer.sign("session", session.token), ttl),
            c.cookie(r, sessions.LOGIN_COOKIE, "", 0),
        ],
    )


async def logout(c: Console, r: Request) -> Answer:
    assert r.token is not None and r.operator is not None
    await c.run(operators.end_session, r.token, r.operator)
    answer = redirect("/login")
    answer.headers.append(c.cookie(r, sessions.SESSION_COOKIE, "", 0))
    return answer


# The overview


async def overview(c: Console, r: Request) -> Answer:
    now = now_ms()
    since = (now // MINUTE - CHART_MINUTES + 1) * MINUTE
    rows = await c.run(admin.activity, since)
    chosen = r.query.get("project", "")
    counts: dict[int, int] = {}
    for row in rows:
        if chosen in ("", row.project.slug):
            for minute, n in row.changes.items():
                counts[minute] = counts.get(minute, 0) + n
    return c.page(
        r,
        "overview.html",
        rows=rows,
        users=sum(row.users for row in rows),
        chart=per_minute(counts, now, CHART_MINUTES),
        chosen=chosen,
    )


# Projects


async def projects(c: Console, r: Request) -> Answer:
    return await _projects_page(c, r)


async def _projects_page(c: Console, r: Request, status: int = 200, error: str = "") -> Answer:
    found = await c.run(admin.list_projects)
    return c.page(r, "projects.html", status, projects=found, error=error, form=r.form)


async def create_project(c: Console, r: Request) -> Answer:
    slug = r.form.get("slug", "").strip()
    try:
        mode = SchemaMode(r.form.get("schema", "auto"))
        timezone = r.form.get("timezone", "").strip() or "UTC"
        await c.run(admin.create_project, slug, mode, timezone, actor=r.actor)
    except (InvalidParameters, Conflict, ValueError) as error:
        return await _projects_page(c, r, *_form_error(error))
    return redirect(f"/projects/{slug}/datasources")


async def project_home(c: Console, r: Request) -> Answer:
    return redirect(f"/projects/{r.params['slug']}/datasources")


# Data sources


async def datasources(c: Console, r: Request) -> Answer:
    return await _datasources_page(c, r)


async def _datasources_page(
    c: Console,
    r: Request,
    status: int = 200,
    error: str = "",
    revealed: Revealed | None = None,
) -> Answer:
    """The project's data sources; ``revealed``: the one time a secret is shown."""
    found = await c.run(admin.list_datasources, r.params["slug"])
    return await project_page(
        c,
        r,
        "datasources.html",
        "datasources",
        status,
        datasources=found,
        error=error,
        revealed=revealed,
    )


async def create_datasource(c: Console, r: Request) -> Answer:
    name = r.form.get("name", "").strip()
    try:
        creds = await c.run(admin.create_datasource, r.params["slug"], name, actor=r.actor)
    except (InvalidParameters, Conflict) as error:
        return await _datasources_page(c, r, *_form_error(error))
    shown = _credentials(f"New data source {name}", creds.datasource.api_key, creds.api_secret)
    return await _datasources_page(c, r, 201, revealed=shown)


def _credentials(headline: str, key: str, secret: str) -> Revealed:
    return Revealed(headline, (("api_key", key), ("api_secret", secret)))


async def _own_datasource(c: Console, r: Request) -> DataSource:
    """The data source of the URL, which must be of the URL's project (404 otherwise)."""
    for ds in await c.run(admin.list_datasources, r.params["slug"]):
        if ds.api_key == r.params["key"]:
            return ds
    raise PageError(404, "This project has no such data source.")


async def rotate_datasource(c: Console, r: Request) -> Answer:
    ds = await _own_datasource(c, r)
    secret = await c.run(admin.rotate_secret, ds.api_key, actor=r.actor)
    shown = _credentials(f"New secret for {ds.name}", ds.api_key, secret)
    return await _datasources_page(c, r, revealed=shown)


async def toggle_datasource(c: Console, r: Request) -> Answer:
    ds = await _own_datasource(c, r)
    await c.run(
        admin.set_datasource_enabled, ds.api_key, r.params["verb"] == "enable", actor=r.actor
    )
    return redirect(f"/projects/{r.params['slug']}/datasources#ds-{ds.api_key}")


# The attribute schema


async def attributes(c: Console, r: Request) -> Answer:
    return await _attributes_page(c, r)


async def _attributes_page(c: Console, r: Request, status: int = 200, error: str = "") -> Answer:
    found = await c.run(admin.list_attributes, r.params["slug"])
    types = [t.value for t in AttrType]
    return await project_page(
        c,
        r,
        "attributes.html",
        "attributes",
        status,
        attributes=found,
        types=types,
        error=error,
        form=r.form,
    )


async def define_attribute(c: Console, r: Request) -> Answer:
    slug, name = r.params["slug"], r.form.get("name", "").strip()
    try:
        kind = AttrType.parse(r.form.get("type", ""))
        await c.run(admin.define_attribute, slug, name, kind, actor=r.actor)
    except (InvalidParameters, Conflict, ValueError) as error:
        return await _attributes_page(c, r, *_form_error(error))
    return redirect(f"/projects/{slug}/attributes#attr-{name}")


# Users


async def project_users(c: Console, r: Request) -> Answer:
    after = _number(r.query.get("after", "0"))
    listed = await c.run(admin.list_users, r.params["slug"], after, USERS_PAGE)
    return await project_page(
        c,
        r,
        "project_users.html",
        "users",
        euids=listed["euids"],
        next_after=listed["next_after"],
        keys=LOOKUP_KEYS,
    )


async def lookup(c: Console, r: Request) -> Answer:
    """The lookup form; with ``key`` and ``value`` given, the user found (a redirect)."""
    key, value = r.query.get("key", ""), r.query.get("value", "").strip()
    slug = r.query.get("project", "")
    error, status = "", 200
    if value:
        try:
            euid = await _find(c, key, slug, value)
        except UserNotFound:
            error, status = "No user matches.", 404
        except InvalidParameters as failure:
            error, status = failure.detail, 400
        else:
            return redirect(f"/users/{euid}")
    found = await c.run(admin.list_projects)
    return c.page(
        r,
        "lookup.html",
        status,
        projects=found,
        keys=LOOKUP_KEYS,
        key=key,
        value=value,
        chosen=slug,
        error=error,
    )


async def _find(c: Console, key: str, slug: str, value: str) -> int:
    kind, _, name = key.partition(":")
    if kind == "euid":
        euid = _number(value)
        await c.run(admin.user_details, euid)  # 40404 unless it exists
        return euid
    if not slug:
        raise InvalidParameters("choose the project to look in")
    if kind == "identity" and name in IDENTITY_NAMES:
        return await c.run(admin.lookup_user, slug, name, value)
    if kind == "contact" and name in CONTACT_NAMES:
        return await c.run(admin.lookup_contact, slug, name, value)
    raise InvalidParameters("choose what to look up by")


async def user(c: Console, r: Request) -> Answer:
    euid = int(r.params["euid"])
    try:
        details = await c.run(admin.user_details, euid)
    except UserNotFound:
        raise PageError(404, f"There is no user with EUID {euid}.") from None
    cursor = r.query.get("before") or None
    before = None if cursor is None else decode_cursor(cursor)
    history = await c.run(admin.list_history, HistoryQuery(euid, limit=HISTORY_PAGE, before=before))
    return c.page(
        r,
        "user.html",
        user=details,
        changes=history["changes"],
        next_cursor=history["next_cursor"],
        paged=cursor is not None,
    )


# The audit log


async def audit_log(c: Console, r: Request) -> Answer:
    before = _number(r.query["before"]) if r.query.get("before") else None
    entries, next_before = await c.run(audit.page, before, audit.DEFAULT_PAGE)
    return c.page(r, "audit.html", entries=entries, next_before=next_before)


# Static files


async def static(c: Console, r: Request) -> Answer:
    asset = c.assets.get(r.params["name"])
    if asset is None:
        raise PageError(404, "There is no such file.")
    etag = f'"{asset.version}"'
    cache = "public, max-age=31536000, immutable"
    if r.query.get("v") != asset.version:  # an unversioned or stale URL: check each time
        cache = "no-cache"
    headers = [("content-type", asset.content_type), ("cache-control", cache), ("etag", etag)]
    if r.if_none_match == etag:
        return Answer(304, headers=headers)
    return Answer(200, asset.body, headers)


def _number(text: str) -> int:
    if not text.isdigit() or len(text) > 19:
        raise InvalidParameters(f"not a number: {text[:30]!r}")
    return int(text)


ROUTES = (
    route("GET", "/login", login_form, public=True),
    route("POST", "/login", login, public=True),
    route("GET", "/static/{name}", static, public=True),
    route("POST", "/logout", logout),
    route("GET", "/?", overview),
    route("GET", "/projects", projects),
    route("POST", "/projects", create_project),
    route("GET", "/projects/{slug}", project_home),
    route("GET", "/projects/{slug}/datasources", datasources),
    route("POST", "/projects/{slug}/datasources", create_datasource),
    route("POST", "/projects/{slug}/datasources/{key}/rotate", rotate_datasource),
    route("POST", "/projects/{slug}/datasources/{key}/{verb}", toggle_datasource),
    route("GET", "/projects/{slug}/attributes", attributes),
    route("POST", "/projects/{slug}/attributes", define_attribute),
    route("GET", "/projects/{slug}/users", project_users),
    route("GET", "/users", lookup),
    route("GET", "/users/{euid}", user),
    route("GET", "/audit", audit_log),
)

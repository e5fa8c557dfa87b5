"""The console's segment pages (docs/console.md, docs/segments.md): a project's saved
segments, the builder that shows who a condition matches as the operator writes it, and a
segment's page with its members.

The preview runs the query of ``POST /v1/segment/query`` (:func:`userprops.queries.run_query`
through :func:`userprops.admin.query_segment`); saving is ``POST /v1/segment``'s create or
replace (:func:`userprops.admin.save_segment`), audited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from userprops import admin, queries
from userprops.console.app import Answer, Console, PageError, Request, route
from userprops.console.pages import project_page, redirect
from userprops.console.render import as_json
from userprops.errors import InvalidParameters

PREVIEW_MEMBERS = 20
MEMBERS_PAGE = 100


@dataclass(frozen=True)
class Preview:
    """What the builder shows under the condition: nothing yet, the error of a bad
    condition (its code and message, naming the leaf), or the count and first members."""

    error: str = ""
    count: int | None = None
    euids: list[int] = field(default_factory=list)
    more: bool = False


@dataclass(frozen=True)
class Builder:
    """The builder's form: the segment's name (fixed when ``editing``), the condition as
    typed, its preview, and the error of a save."""

    name: str = ""
    where: str = ""
    editing: str = ""
    preview: Preview | None = None
    error: str = ""


_SAMPLES = (  # (type, a stand-in name, what it matches, op, value)
    ("STRING", "plan", "equal to a value", "eq", "gold"),
    ("NUMBER", "age", "in a range, both ends included", "between", [18, 65]),
    ("DATETIME", "last_seen", "in the last 30 days", "within_last_days", 30),
    ("LIST", "tags", "holding either element", "has_any", ["vip", "beta"]),
    ("BOOL", "vip", "true", "eq", True),
)


def examples(attributes: list[tuple[str, Any, str]]) -> list[tuple[str, dict[str, Any]]]:
    """Conditions to start from, (caption, condition), written with the project's own
    attributes where it has one of the type (those first), stand-ins otherwise."""
    named: dict[str, str] = {}
    for name, kind, _ in attributes:
        named.setdefault(str(kind), name)
    leaves: list[tuple[str, dict[str, Any]]] = []
    for kind, stand_in, caption, op, value in sorted(_SAMPLES, key=lambda s: s[0] not in named):
        name = named.get(kind, stand_in)
        leaves.append((f"{kind} {name} {caption}", {"property": name, "op": op, "value": value}))
    first, second = leaves[0][1], leaves[1][1]
    return [
        *leaves,
        ("Both of the first two", {"and": [first, second]}),
        (
            f"Everybody without {first['property']}",
            {"property": first["property"], "op": "not_set"},
        ),
        ("Everybody but the first", {"not": first}),
    ]


def _where(text: str) -> Any:
    try:
        return queries.decode_where(text)
    except ValueError as exc:
        raise InvalidParameters(f"where is {exc}") from None


async def preview(c: Console, slug: str, text: str) -> Preview | None:
    """The count and first members of the condition ``text``, as ``POST
    /v1/segment/query`` answers them; None when nothing is written yet."""
    if not text.strip():
        return None
    try:
        query = queries.SegmentQuery(_where(text), PREVIEW_MEMBERS)
        page = await c.run(admin.query_segment, slug, query, c.settings.limits)
    except InvalidParameters as error:
        return Preview(error=f"{error.code}: {error.detail}")
    return Preview(count=page["count"], euids=page["euids"], more=bool(page["next_cursor"]))


# The segments of a project


async def segments(c: Console, r: Request) -> Answer:
    """The saved segments and the builder of a new one (``?where=`` fills it in)."""
    where = r.query.get("where", "")
    built = Builder(where=where, preview=await preview(c, r.params["slug"], where))
    return await _segments_page(c, r, built)


async def _segments_page(c: Console, r: Request, builder: Builder, status: int = 200) -> Answer:
    slug = r.params["slug"]
    found = await c.run(admin.list_segments, slug)
    defined = await c.run(admin.list_attributes, slug)
    return await project_page(
        c,
        r,
        "segments.html",
        "segments",
        status,
        segments=found,
        builder=builder,
        examples=examples(defined),
    )


# A segment


async def segment(c: Console, r: Request) -> Answer:
    slug, name = r.params["slug"], r.params["segment"]
    shown = await _show(c, slug, name)
    where = as_json(shown["where"], indent=2)
    built = Builder(name, where, editing=name, preview=await preview(c, slug, where))
    return await _segment_page(c, r, shown, built)


async def _show(c: Console, slug: str, name: str) -> dict[str, Any]:
    try:
        return await c.run(admin.show_segment, slug, name)
    except InvalidParameters:
        raise PageError(404, f"{slug} has no segment named {name}.") from None


async def _segment_page(
    c: Console, r: Request, shown: dict[str, Any], builder: Builder, status: int = 200
) -> Answer:
    cursor = r.query.get("cursor") or None
    query = queries.MembersQuery(shown["name"], MEMBERS_PAGE, cursor)
    page = await c.run(admin.segment_members, r.params["slug"], query)
    return await project_page(
        c,
        r,
        "segment.html",
        "segments",
        status,
        segment=shown,
        members=page,
        paged=cursor is not None,
        builder=builder,
        examples=[],
    )


# The builder's actions


def _builder(r: Request, **more: Any) -> Builder:
    form = r.form
    editing = form.get("editing", "")
    name = editing or form.get("name", "").strip()
    return Builder(name, form.get("where", ""), editing, **more)


async def _builder_page(c: Console, r: Request, builder: Builder, status: int = 200) -> Answer:
    """The page the builder's form came from: a segment's, or the list's."""
    if builder.editing:
        shown = await _show(c, r.params["slug"], builder.editing)
        return await _segment_page(c, r, shown, builder, status)
    return await _segments_page(c, r, builder, status)


async def preview_segment(c: Console, r: Request) -> Answer:
    """The live preview: the preview alone to htmx, else the builder's page with it."""
    shown = await preview(c, r.params["slug"], r.form.get("where", ""))
    if r.htmx:
        return c.page(r, "segment_preview.html", preview=shown)
    return await _builder_page(c, r, _builder(r, preview=shown))


async def save_segment(c: Console, r: Request) -> Answer:
    slug = r.params["slug"]
    builder = _builder(r)
    try:
        where = _where(builder.where)
        await c.run(
            admin.save_segment,
            slug,
            builder.name,
            where,
            c.settings.limits,
            r.actor,
            source=f"console:{r.actor}",
            record=c.settings.history,
        )
    except InvalidParameters as error:
        shown = await preview(c, slug, builder.where)
        failed = Builder(builder.name, builder.where, builder.editing, shown, error.detail)
        return await _builder_page(c, r, failed, 400)
    return redirect(f"/projects/{slug}/segments/{quote(builder.name)}")


ROUTES = (
    route("GET", "/projects/{slug}/segments", segments),
    route("POST", "/projects/{slug}/segments", save_segment),
    route("POST", "/projects/{slug}/segments/preview", preview_segment),
    route("GET", "/projects/{slug}/segments/{segment}", segment),
)

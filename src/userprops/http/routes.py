"""HTTP handlers: thin. Each parses its input with :mod:`userprops.http.wire`, calls the
engine, and builds the envelope. No SQL and no business rules here."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from userprops import idempotency
from userprops.auth import Authenticator, Principal
from userprops.config import Limits
from userprops.engine import Engine
from userprops.errors import StorageUnavailable
from userprops.http import openapi
from userprops.http.metrics import Metrics
from userprops.http.responses import SUCCESS, Response, json_response, success
from userprops.http.wire import (
    parse_batch_request,
    parse_contact_request,
    parse_delete_request,
    parse_euid_query,
    parse_feed_query,
    parse_history_query,
    parse_list_query,
    parse_lookup_query,
    parse_members_query,
    parse_property_request,
    parse_register_request,
    parse_report_request,
    parse_segment_query,
    parse_segment_request,
)
from userprops.reader import Reader
from userprops.storage.base import Storage
from userprops.writer import Writer


@dataclass
class Request:
    method: str
    path: str
    query: bytes
    authorization: bytes | None
    body: bytes
    client: str | None = None


@dataclass
class Services:
    engine: Engine
    auth: Authenticator
    storage: Storage
    limits: Limits
    writer: Writer
    reader: Reader
    metrics: Metrics


Handler = Callable[[Services, Request], Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    reads_body: bool = False


async def authenticated(services: Services, request: Request) -> Principal:
    who = services.auth.cached(request.authorization) or await services.auth.authenticate(
        request.authorization, request.client
    )
    idempotency.bind(who.datasource_id)
    return who


async def post_property(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    parsed = parse_property_request(request.body, services.limits)
    errors = await services.engine.set_properties(who, parsed)
    return success(errors=errors) if errors else SUCCESS


async def post_property_batch(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    parsed = parse_batch_request(request.body, services.limits)
    return success(await services.engine.set_properties_batch(who, parsed))


async def get_property(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    euid = parse_euid_query(request.query)
    return success(await services.engine.get_properties(who, euid))


async def post_register(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    parsed = parse_register_request(request.body, services.limits)
    outcome = await services.engine.register(who, parsed)
    return success(outcome.data, outcome.errors)


async def get_lookup(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    query = parse_lookup_query(request.query, services.limits)
    return success(await services.engine.lookup(who, query))


async def post_delete(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    await services.engine.delete_user(who, parse_delete_request(request.body))
    return SUCCESS


async def post_contact(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    parsed = parse_contact_request(request.body)
    errors = await services.engine.set_contacts(who, parsed)
    return success(errors=errors) if errors else SUCCESS


async def get_contact(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    euid = parse_euid_query(request.query)
    return success(await services.engine.get_contacts(who, euid))


async def post_event_report(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    parsed = parse_report_request(request.body, services.limits)
    errors = await services.engine.report_events(who, parsed)
    return success(errors=errors) if errors else SUCCESS


async def get_event_list(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    query = parse_list_query(request.query)
    return success(await services.engine.list_events(who, query))


async def get_history(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    query = parse_history_query(request.query)
    return success(await services.engine.history(who, query))


async def get_changes(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    query = parse_feed_query(request.query)
    return success(await services.engine.changes(who, query))


async def post_segment_query(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    query = parse_segment_query(request.body)
    return success(await services.engine.query_segment(who, query))


async def post_segment(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    parsed = parse_segment_request(request.body)
    return success(await services.engine.save_segment(who, parsed))


async def get_segment_members(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    query = parse_members_query(request.query)
    return success(await services.engine.segment_members(who, query))


async def get_user_segments(services: Services, request: Request) -> Response:
    who = await authenticated(services, request)
    euid = parse_euid_query(request.query)
    return success(await services.engine.user_segments(who, euid))


async def healthz(services: Services, request: Request) -> Response:
    return json_response({"code": 0, "message": "alive"})


async def readyz(services: Services, request: Request) -> Response:
    """Ready when the storage answers and takes writes: after the writer's last batch
    failed (a full disk fails writes while reads go on), a probe write must succeed."""
    try:
        await asyncio.wait_for(asyncio.to_thread(services.storage.ping), timeout=2.0)
    except (StorageUnavailable, TimeoutError):
        raise StorageUnavailable("storage unreachable") from None
    if services.writer.failing:
        try:
            await asyncio.wait_for(services.writer.probe(), timeout=2.0)
        except (StorageUnavailable, TimeoutError):
            raise StorageUnavailable("storage fails writes") from None
    return json_response({"code": 0, "message": "ready"})


async def metrics(services: Services, request: Request) -> Response:
    text = services.metrics.render({"writer": services.writer, "reader": services.reader})
    return Response(200, text.encode(), {"content-type": "text/plain; version=0.0.4"})


async def get_openapi(services: Services, request: Request) -> Response:
    return Response(200, openapi.document_bytes())


ROUTES: dict[str, dict[str, Route]] = {
    "/v1/user/property": {
        "POST": Route(post_property, reads_body=True),
        "GET": Route(get_property),
    },
    "/v1/user/property/batch": {"POST": Route(post_property_batch, reads_body=True)},
    "/v1/user/register": {"POST": Route(post_register, reads_body=True)},
    "/v1/user/lookup": {"GET": Route(get_lookup)},
    "/v1/user/delete": {"POST": Route(post_delete, reads_body=True)},
    "/v1/user/contact": {
        "POST": Route(post_contact, reads_body=True),
        "GET": Route(get_contact),
    },
    "/v1/event/report": {"POST": Route(post_event_report, reads_body=True)},
    "/v1/event/list": {"GET": Route(get_event_list)},
    "/v1/user/history": {"GET": Route(get_history)},
    "/v1/changes": {"GET": Route(get_changes)},
    "/v1/segment": {"POST": Route(post_segment, reads_body=True)},
    "/v1/segment/query": {"POST": Route(post_segment_query, reads_body=True)},
    "/v1/segment/members": {"GET": Route(get_segment_members)},
    "/v1/user/segments": {"GET": Route(get_user_segments)},
    "/healthz": {"GET": Route(healthz)},
    "/readyz": {"GET": Route(readyz)},
    "/metrics": {"GET": Route(metrics)},
    "/openapi.json": {"GET": Route(get_openapi)},
}

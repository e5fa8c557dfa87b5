"""The API's calls, free of I/O: each function builds a :class:`Call` (method, path, query,
body) and knows how to read its answer. :class:`~userprops_client.Client` and
:class:`~userprops_client.AsyncClient` only send calls and sleep between attempts, so an
endpoint is added here once and wrapped by one line in each client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import httpx

from userprops_client._errors import (
    RateLimited,
    Unavailable,
    UnexpectedResponse,
    UserpropsError,
    error_from_answer,
)
from userprops_client._json import dumps, loads
from userprops_client._results import (
    BatchResult,
    Change,
    ChangePage,
    Event,
    EventPage,
    HistoryPage,
    Registration,
    SavedSegment,
    SegmentPage,
    WriteResult,
    item_errors,
)
from userprops_client._retry import parse_retry_after

T = TypeVar("T")
Envelope = Mapping[str, Any]
Operation = Literal["set", "increase", "add", "remove", "delete"]
IdentityName = Literal["user_id", "anonymous_id", "registration_id"]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reading of its answer.

    ``body`` is serialised once, so every attempt of a call sends the same bytes (the
    server matches a replayed ``Idempotency-Key`` against them). ``read`` turns a success
    envelope (``code`` 0) into the call's result.
    """

    method: Literal["GET", "POST"]
    path: str
    read: Callable[[Envelope], T]
    params: Mapping[str, str | int | float] | None = None
    body: bytes | None = None
    hold: float = 0.0  # seconds the server may hold the answer (a long poll), over timeouts

    def result(self, response: httpx.Response) -> T:
        """The result of a final answer, or its exception."""
        body = success_envelope(response)
        try:
            return self.read(body)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(
                f"a success answer of an unexpected shape ({type(exc).__name__}: {exc})",
                code=0,
                status=response.status_code,
            ) from exc


def success_envelope(response: httpx.Response) -> Envelope:
    """The envelope of a success answer; raises the exception any other answer stands
    for."""
    try:
        body = loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, Mapping) or not isinstance(body.get("code"), int):
        raise _not_an_envelope(response)
    if body["code"] != 0:
        raise error_from_answer(
            response.status_code, body, parse_retry_after(response.headers.get("retry-after"))
        )
    return body


def _not_an_envelope(response: httpx.Response) -> UserpropsError:
    message = f"HTTP {response.status_code} without a userprops envelope"
    if response.status_code == 429:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        return RateLimited(message, retry_after=retry_after, status=429)
    if response.status_code == 503:
        return Unavailable(message, status=503)
    return UnexpectedResponse(message, status=response.status_code)


def _write_result(body: Envelope) -> WriteResult:
    return WriteResult(str(body.get("message", "success")), item_errors(body.get("errors")))


# EngageLab's endpoints: only EngageLab's wire format.


def write_properties(
    euid: int,
    operation: Operation,
    properties: Mapping[str, object],
    timestamp: int | None = None,
) -> Call[WriteResult]:
    body: dict[str, object] = {"euid": euid, "type": operation, "properties": properties}
    if timestamp is not None:  # an extension: sent only when given
        body["timestamp"] = timestamp
    return Call("POST", "/v1/user/property", _write_result, body=dumps(body))


def register(identity_name: IdentityName, values: Iterable[str]) -> Call[Registration]:
    def read(body: Envelope) -> Registration:
        pairs = ((item["identity_value"], item["euid"]) for item in body.get("data") or ())
        return Registration(pairs, item_errors(body.get("errors")))

    body = {"identity_name": identity_name, "identity_values": list(values)}
    return Call("POST", "/v1/user/register", read, body=dumps(body))


def set_contacts(euid: int, contacts: Mapping[str, str]) -> Call[WriteResult]:
    body = {"euid": euid, "contacts": contacts}
    return Call("POST", "/v1/user/contact", _write_result, body=dumps(body))


def report_events(events: Iterable[Mapping[str, object]], app_key: str | None) -> Call[WriteResult]:
    body: dict[str, object] = {"data": list(events)}
    if app_key is not None:
        body["app_key"] = app_key
    return Call("POST", "/v1/event/report", _write_result, body=dumps(body))


# userprops's extensions.


def read_properties(euid: int) -> Call[dict[str, Any]]:
    def read(body: Envelope) -> dict[str, Any]:
        return dict(body["data"]["properties"])

    return Call("GET", "/v1/user/property", read, params={"euid": euid})


def read_contacts(euid: int) -> Call[dict[str, str]]:
    def read(body: Envelope) -> dict[str, str]:
        return dict(body["data"]["contacts"])

    return Call("GET", "/v1/user/contact", read, params={"euid": euid})


def list_events(
    euid: int,
    *,
    since: int | None = None,
    until: int | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[EventPage]:
    def read(body: Envelope) -> EventPage:
        data = body["data"]
        events = [
            Event(
                event_name=e["event_name"],
                itime=e["itime"],
                random_id=e.get("random_id"),
                app_key=e.get("app_key"),
                properties=dict(e.get("properties") or {}),
            )
            for e in data["events"]
        ]
        return EventPage(data["euid"], events, data.get("next_cursor"))

    given = {"from": since, "to": until, "limit": limit, "cursor": cursor}
    params: dict[str, str | int] = {"euid": euid}
    params.update({k: v for k, v in given.items() if v is not None})
    return Call("GET", "/v1/event/list", read, params=params)


def write_batch(updates: Iterable[Mapping[str, object]]) -> Call[list[BatchResult]]:
    def read(body: Envelope) -> list[BatchResult]:
        return [
            BatchResult(i["index"], i["code"], i["message"], item_errors(i.get("errors")))
            for i in body["data"]
        ]

    return Call("POST", "/v1/user/property/batch", read, body=dumps({"updates": list(updates)}))


def lookup(identity_name: IdentityName, value: str) -> Call[int]:
    def read(body: Envelope) -> int:
        return int(body["data"]["euid"])

    params = {"identity_name": identity_name, "identity_value": value}
    return Call("GET", "/v1/user/lookup", read, params=params)


def delete_user(euid: int) -> Call[None]:
    def read(body: Envelope) -> None:
        return None

    return Call("POST", "/v1/user/delete", read, body=dumps({"euid": euid}))


def history(
    euid: int,
    *,
    prop: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[HistoryPage]:
    def read(body: Envelope) -> HistoryPage:
        data = body["data"]
        changes = [Change.from_wire(c) for c in data["changes"]]
        return HistoryPage(data["euid"], changes, data.get("next_cursor"))

    given = {"property": prop, "from": since, "to": until, "limit": limit, "cursor": cursor}
    params: dict[str, str | int | float] = {"euid": euid}
    params.update({k: v for k, v in given.items() if v is not None})
    return Call("GET", "/v1/user/history", read, params=params)


def changes(after: int, *, limit: int | None = None, wait: float = 0.0) -> Call[ChangePage]:
    def read(body: Envelope) -> ChangePage:
        data = body["data"]
        return ChangePage([Change.from_wire(c) for c in data["changes"]], data["last_seq"])

    params: dict[str, str | int | float] = {"after": after}
    if limit is not None:
        params["limit"] = limit
    if wait:
        params["wait"] = wait
    return Call("GET", "/v1/changes", read, params=params, hold=wait)


def _segment_page(body: Envelope) -> SegmentPage:
    data = body["data"]
    return SegmentPage(
        int(data["count"]),
        [int(e) for e in data["euids"]],
        data.get("next_cursor"),
        bool(data.get("complete", True)),
    )


def query_segment(
    where: Mapping[str, Any], *, limit: int | None = None, cursor: str | None = None
) -> Call[SegmentPage]:
    given = {"where": where, "limit": limit, "cursor": cursor}
    body = {k: v for k, v in given.items() if v is not None}
    return Call("POST", "/v1/segment/query", _segment_page, body=dumps(body))


def save_segment(name: str, where: Mapping[str, Any]) -> Call[SavedSegment]:
    def read(body: Envelope) -> SavedSegment:
        data = body["data"]
        return SavedSegment(data["name"], bool(data["created"]), int(data["count"]))

    return Call("POST", "/v1/segment", read, body=dumps({"name": name, "where": where}))


def segment_members(
    name: str, *, limit: int | None = None, cursor: str | None = None
) -> Call[SegmentPage]:
    given = {"name": name, "limit": limit, "cursor": cursor}
    params: dict[str, str | int | float] = {k: v for k, v in given.items() if v is not None}
    return Call("GET", "/v1/segment/members", _segment_page, params=params)


def user_segments(euid: int) -> Call[list[str]]:
    def read(body: Envelope) -> list[str]:
        return [str(name) for name in body["data"]["segments"]]

    return Call("GET", "/v1/user/segments", read, params={"euid": euid})

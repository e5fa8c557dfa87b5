"""Building and sending answers: every one is the JSON envelope of docs/errors.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from userprops.errors import ErrorItem, UserpropsError, envelope, success_message
from userprops.schema import encode_json

_ENCODER = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, encode_json(_ENCODER, body), headers or {})


def success(data: Any = None, errors: Sequence[ErrorItem] | None = None) -> Response:
    """``code`` 0: full success, or partial success when ``errors`` is not empty."""
    body: dict[str, Any] = {"code": 0, "message": success_message(len(errors or ()))}
    if data is not None:
        body["data"] = data
    if errors:
        body["errors"] = errors
    return json_response(body)


SUCCESS = Response(200, b'{"code":0,"message":"success"}')


def error_response(error: UserpropsError, *, close: bool = False) -> Response:
    response = json_response(envelope(error), error.status, error.headers)
    if close:
        return Response(response.status, response.body, response.headers, close=True)
    return response


# The hot path's answer as ASGI messages, built once (servers only read them).
SUCCESS_START: dict[str, Any] = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-length", str(len(SUCCESS.body)).encode()),
        (b"content-type", b"application/json"),
    ],
}
SUCCESS_BODY: dict[str, Any] = {"type": "http.response.body", "body": SUCCESS.body}


async def send(send_: Any, response: Response) -> None:
    headers = [(b"content-length", str(len(response.body)).encode())]
    if "content-type" not in response.headers:
        headers.append((b"content-type", b"application/json"))
    headers.extend((k.encode(), v.encode()) for k, v in response.headers.items())
    if response.close:
        headers.append((b"connection", b"close"))
    await send_({"type": "http.response.start", "status": response.status, "headers": headers})
    await send_({"type": "http.response.body", "body": response.body})

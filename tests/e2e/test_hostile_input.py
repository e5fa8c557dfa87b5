"""Hostile input that only a socket shows, against a real server: oversized, slow and
malformed requests each get their documented answer (docs/security.md), never a 500. The
JSON cases run in-process: tests/http/test_hostile_input.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.support.liveserver import Server, live_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hostile")
    with live_server(tmp, body_timeout=1, header_timeout=1) as running:
        yield running


def exchange(server: Server, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send raw bytes, read until the server closes the connection or ``timeout``."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_a_10_mb_body_gets_a_readable_413(server: Server) -> None:
    r = httpx.post(
        server.url + "/v1/user/property", content=b"x" * 10_000_000, headers=server.auth_header
    )
    assert (r.status_code, r.json()["code"]) == (413, 41300)
    assert r.headers["connection"] == "close"


def test_a_10_mb_body_declared_in_advance_gets_a_readable_413(server: Server) -> None:
    with httpx.Client() as client:
        r = client.post(
            server.url + "/v1/user/register",
            content=iter([b"[" * 1_000_000] * 10),
            headers={**server.auth_header, "content-length": "10000000"},
        )
    assert (r.status_code, r.json()["code"]) == (413, 41300)


def test_a_10_mb_chunked_body_gets_a_readable_413(server: Server) -> None:
    with httpx.Client() as client:
        r = client.post(
            server.url + "/v1/user/property",
            content=iter([b"x" * 1_000_000] * 10),
            headers=server.auth_header,
        )
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert (r.status_code, r.json()["code"]) == (413, 41300)


def test_a_body_that_trickles_in_is_cut_off_with_408(server: Server) -> None:
    head = (
        b"POST /v1/user/property HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
        + b"Authorization: "
        + server.auth_header["authorization"].encode()
        + b"\r\n\r\n"
    )
    answer = exchange(server, head + b'{"eu')
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert answer.endswith(b'{"code":40800,"message":"request body not received in time"}')


def test_a_connection_that_sends_nothing_is_closed(server: Server) -> None:
    assert exchange(server, b"") == b""


def test_headers_that_trickle_in_are_cut_off(server: Server) -> None:
    assert exchange(server, b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: aaa") == b""


def test_a_kept_alive_connection_still_serves_its_next_request(server: Server) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        for _ in range(2):
            s.sendall(request)
            answer = b""
            while not answer.endswith(b'"alive"}'):
                answer += s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("size", [70_000, 1_000_000])
def test_an_oversized_header_gets_431_not_a_500(server: Server, size: int) -> None:
    request = b"GET /v1/user/property?euid=1 HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * size
    answer = exchange(server, request + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code":43100' in answer


NOT_HTTP = {
    "not a request line": b"NOT HTTP AT ALL\r\n\r\n",
    "content-length and chunked (smuggling)": b"POST /v1/user/register HTTP/1.1\r\nHost: t\r\n"
    b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n",
    "two content-lengths": b"POST /v1/user/register HTTP/1.1\r\nHost: t\r\n"
    b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "negative content-length": b"POST /v1/user/register HTTP/1.1\r\nContent-Length: -1\r\n\r\nab",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\x00b\r\n\r\n",
    "bare CR in a header": b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
}


@pytest.mark.parametrize("case", list(NOT_HTTP))
def test_what_is_not_http_is_answered_400_by_the_http_layer(server: Server, case: str) -> None:
    answer = exchange(server, NOT_HTTP[case])
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1") == 1  # nothing smuggled behind it was answered


def test_the_server_still_serves_after_all_that_and_logged_no_secret(server: Server) -> None:
    assert httpx.get(server.url + "/healthz").json()["code"] == 0
    euid = server.register("after")
    assert server.props(euid) == {}
    token = server.auth_header["authorization"].split()[1]
    log = server.log.read_text()
    assert server.api_secret not in log and token not in log

"""The deliveries' HTTP client (userprops.webhook_http) against a scripted server on
127.0.0.1 that answers raw bytes: keep-alive and its stale connections, every way an
answer's body can end, interim answers, TLS, credentials in the URL, and what is not
HTTP at all."""

from __future__ import annotations

import asyncio
import base64
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from userprops.webhook_http import MAX_BODY, Poster, PostError

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
LARGE = b"x" * 2 * MAX_BODY
Script = Callable[[int], bytes | None]  # request number -> raw answer (None: close)


class Scripted:
    """Reads each request (head and Content-Length body) and writes ``script(n)``."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                answer = self.script(len(self.requests))
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if answer.startswith(b"HTTP/1.0") or b"connection: close" in answer:
                    break  # as such a server does
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def scripted(script: Script, tls: ssl.SSLContext | None = None) -> AsyncIterator[Scripted]:
    server = Scripted(script)
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()


async def post(poster: Poster, url: str) -> tuple[int, dict[bytes, bytes]]:
    answer = await poster.post(url, b'{"n": 1}', {"webhook-id": "msg_1_1"})
    return answer.status, answer.headers


async def test_a_connection_is_kept_for_the_next_delivery_and_the_request_is_whole() -> None:
    poster = Poster()
    async with scripted(lambda n: OK) as server:
        url = f"http://127.0.0.1:{server.port}/in?x=1"
        assert await post(poster, url) == (200, {b"content-length": b"2"})
        assert (await post(poster, url))[0] == 200
    await poster.aclose()
    assert server.connections == 1
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /in?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert b"webhook-id: msg_1_1" in lines and b"Content-Length: 8" in lines
    assert body == b'{"n": 1}'


async def test_a_kept_connection_the_endpoint_closed_is_replaced_unseen() -> None:
    poster = Poster()
    # The first connection answers once, then closes as the next request arrives.
    async with scripted(lambda n: None if n == 2 else OK) as server:
        url = f"http://127.0.0.1:{server.port}/"
        assert (await post(poster, url))[0] == 200
        assert (await post(poster, url))[0] == 200
    await poster.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        (b"HTTP/1.1 500 Oops\r\ntransfer-encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n", True),
        (b"HTTP/1.1 429 Slow\r\nretry-after: 30\r\ncontent-length: 0\r\n\r\n", True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok", False),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the close", False),
        (b"HTTP/1.1 204 No Content\r\ncontent-length: 2\r\n\r\nok", False),  # a stray body
        (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (2 * MAX_BODY, LARGE), False),
    ],
    ids=["chunked", "retry-after", "interim", "close", "http/1.0", "stray", "large"],
)
async def test_every_way_an_answer_can_end_is_read(answer: bytes, kept: bool) -> None:
    poster = Poster()
    status = int(answer.rsplit(b"HTTP/1.", 1)[1].split(b" ")[1])
    async with scripted(lambda n: answer if n == 1 else OK) as server:
        url = f"http://127.0.0.1:{server.port}/"
        got, headers = await asyncio.wait_for(post(poster, url), 10)
        assert got == status
        assert (await post(poster, url))[0] == 200
    await poster.aclose()
    assert server.connections == (1 if kept else 2)
    if status == 429:
        assert headers[b"retry-after"] == b"30"


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (lambda n: None, "connection closed before an answer"),
        (lambda n: b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP answer"),
    ],
)
async def test_what_is_no_answer_is_a_post_error(script: Script, message: str) -> None:
    poster = Poster()
    async with scripted(script) as server:
        with pytest.raises(PostError, match=message):
            await post(poster, f"http://127.0.0.1:{server.port}/")
    await poster.aclose()


async def test_a_refused_connection_is_a_post_error() -> None:
    async with scripted(lambda n: OK) as server:
        port = server.port
    with pytest.raises(PostError, match="Connection refused"):
        await post(Poster(), f"http://127.0.0.1:{port}/")


async def test_credentials_in_the_url_are_sent_as_basic_auth() -> None:
    poster = Poster()
    async with scripted(lambda n: OK) as server:
        await post(poster, f"http://us%40er:p%3Ass@127.0.0.1:{server.port}/")
    await poster.aclose()
    token = base64.b64encode(b"us@er:p:ss").decode()
    assert f"Authorization: Basic {token}".encode() in server.requests[0]
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in server.requests[0]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_is_verified_against_the_trust_store(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    trusted, default = Poster(trusting), Poster()
    async with scripted(lambda n: OK, tls=serving) as server:
        url = f"https://127.0.0.1:{server.port}/"
        assert (await post(trusted, url))[0] == 200
        with pytest.raises(PostError, match="TLS: CERTIFICATE_VERIFY_FAILED"):
            await post(default, url)  # the system's trust store does not know it
        await trusted.aclose()

"""Retries: what is retried, with which key and body, how long the client waits, and when
it gives up. Against a real server through a proxy that loses answers, a real server
that rate-limits, and (for the schedule) a scripted stub."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from tests.support.clients import FAST, either
from tests.support.liveserver import Server, live_server
from tests.support.netfaults import Answer, drop_proxy, stub
from userprops_client import (
    Client,
    InternalError,
    RateLimited,
    RetryPolicy,
    TransportError,
    Unavailable,
    UnexpectedResponse,
    UserNotFound,
    UserpropsError,
)
from userprops_client._retry import Attempts, parse_retry_after

UNAVAILABLE = Answer(503, {"code": 50300, "message": "storage unavailable"})
SUCCESS = Answer()
FAST_TWO = RetryPolicy(retries=2, backoff=0.01, max_backoff=0.05)


def bodies(requests: list[bytes]) -> list[bytes]:
    return [request.split(b"\r\n\r\n", 1)[1] for request in requests]


# Against the real server, through a proxy that drops answers.


async def test_a_lost_answer_is_retried_with_the_same_key_and_applies_once(
    kind: str, server: Server
) -> None:
    euid = server.register(uuid.uuid4().hex)
    with drop_proxy(server.port) as proxy:
        async with either(kind, server, base_url=proxy.url) as up:
            assert (await up.increase(euid, {"visits": 1})).ok
    assert server.props(euid) == {"visits": 1}
    keys = proxy.header_values("idempotency-key")
    assert len(keys) == 2 and keys[0] == keys[1] and re.fullmatch("[0-9a-f]{32}", keys[0])
    first, retry = bodies(proxy.requests)
    assert first == retry


async def test_without_idempotency_keys_a_lost_write_is_not_retried(
    kind: str, server: Server
) -> None:
    euid = server.register(uuid.uuid4().hex)
    with drop_proxy(server.port) as proxy:
        async with either(kind, server, base_url=proxy.url, idempotency_keys=False) as up:
            with pytest.raises(TransportError) as lost:
                await up.increase(euid, {"visits": 1})
    assert isinstance(lost.value.__cause__, httpx.RemoteProtocolError)
    assert lost.value.code is None and lost.value.status is None
    assert len(proxy.requests) == 1 and proxy.header_values("idempotency-key") == []
    assert server.props(euid) == {"visits": 1}  # applied: the caller was told it cannot know


async def test_a_lost_answer_to_a_read_is_retried_without_a_key(kind: str, server: Server) -> None:
    euid = server.register(uuid.uuid4().hex)
    with drop_proxy(server.port) as proxy:
        async with either(kind, server, base_url=proxy.url, idempotency_keys=False) as up:
            assert await up.get(euid) == {}
    assert len(proxy.requests) == 2


# Against a real server that rate-limits.


def responses_429(server: Server) -> int:
    text = httpx.get(server.url + "/metrics").text
    return sum(int(n) for n in re.findall(r'status="429"} ([0-9]+)', text))


async def test_rate_limited_calls_honour_retry_after(kind: str, tmp_path: Path) -> None:
    with live_server(tmp_path, rate_limit=0.5, rate_burst=1) as limited:
        euid = limited.register(uuid.uuid4().hex)  # takes the only token
        async with either(kind, limited, retries=0) as impatient:
            with pytest.raises(RateLimited) as refused:
                await impatient.get(euid)
        assert (refused.value.code, refused.value.status) == (42900, 429)
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1
        before = responses_429(limited)
        async with either(kind, limited) as patient:
            assert await patient.get(euid) == {}
        assert responses_429(limited) == before + 1  # refused once, then waited enough


async def test_a_wait_longer_than_the_budget_is_raised_at_once(kind: str, tmp_path: Path) -> None:
    with live_server(tmp_path, rate_limit=0.01, rate_burst=1) as limited:
        euid = limited.register(uuid.uuid4().hex)
        async with either(kind, limited) as up:
            with pytest.raises(RateLimited) as refused:
                await up.set(euid, {"plan": "gold"})
        assert refused.value.retry_after is not None
        assert refused.value.retry_after > FAST.max_wait
        assert responses_429(limited) == 1


# The schedule, against a scripted stub.


async def test_503_is_retried_with_the_same_key_and_body(kind: str) -> None:
    with stub(UNAVAILABLE, UNAVAILABLE, SUCCESS) as server:
        async with either(kind, base_url=server.url) as up:
            assert (await up.increase(1, {"visits": 1})).ok
    assert len(server.seen) == 3
    assert len({seen.headers["idempotency-key"] for seen in server.seen}) == 1
    assert len({seen.body for seen in server.seen}) == 1


async def test_retries_are_bounded_then_the_last_failure_is_raised(kind: str) -> None:
    with stub(UNAVAILABLE) as server:
        async with either(kind, base_url=server.url, retries=FAST_TWO) as up:
            with pytest.raises(Unavailable) as failed:
                await up.get(1)
    assert (failed.value.code, failed.value.status) == (50300, 503)
    assert len(server.seen) == 3


async def test_a_proxy_error_page_is_retried_on_503_only(kind: str) -> None:
    page = b"<html>bad gateway</html>"
    with stub(Answer(503, page), Answer(502, page)) as server:
        async with either(kind, base_url=server.url) as up:
            with pytest.raises(UnexpectedResponse) as unexpected:
                await up.get(1)
    assert unexpected.value.status == 502 and unexpected.value.code is None
    assert len(server.seen) == 2
    with stub(Answer(503, page)) as server:
        async with either(kind, base_url=server.url, retries=0) as up:
            with pytest.raises(Unavailable) as unavailable:
                await up.get(1)
    assert unavailable.value.status == 503


async def test_retry_after_is_waited_for(kind: str) -> None:
    limited = Answer(429, {"code": 42900, "message": "slow down"}, {"Retry-After": "1"})
    with stub(limited, SUCCESS) as server:
        async with either(kind, base_url=server.url) as up:
            assert (await up.set(1, {"plan": "gold"})).ok
    first, retry = server.seen
    assert retry.at - first.at >= 1.0


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(500, {"code": 50000, "message": "internal error"}), InternalError),
        (Answer(404, {"code": 40404, "message": "user not found"}), UserNotFound),
    ],
)
async def test_other_failures_are_not_retried(
    kind: str, answer: Answer, error: type[UserpropsError]
) -> None:
    with stub(answer) as server:
        async with either(kind, base_url=server.url) as up:
            with pytest.raises(error) as failed:
                await up.get(1)
    assert failed.value.code == answer.body["code"]  # type: ignore[index]
    assert len(server.seen) == 1


async def test_an_unknown_code_is_the_base_class_with_that_code(kind: str) -> None:
    with stub(Answer(400, {"code": 12345, "message": "new"})) as server:
        async with either(kind, base_url=server.url) as up:
            with pytest.raises(UserpropsError) as failed:
                await up.get(1)
    assert type(failed.value) is UserpropsError
    assert (failed.value.code, failed.value.status, failed.value.message) == (12345, 400, "new")


async def test_a_read_timeout_is_retried_only_when_replaying_is_harmless(kind: str) -> None:
    hang = Answer(hang=True)
    with stub(hang, SUCCESS) as server:
        async with either(kind, base_url=server.url, timeout=0.5) as up:
            assert (await up.increase(1, {"visits": 1})).ok
    assert [seen.headers["idempotency-key"] for seen in server.seen].count(
        server.seen[0].headers["idempotency-key"]
    ) == 2
    read = Answer(body={"code": 0, "message": "success", "data": {"euid": 1, "properties": {}}})
    with stub(hang, hang, read) as server:
        async with either(kind, base_url=server.url, timeout=0.5, idempotency_keys=False) as up:
            with pytest.raises(TransportError) as timed_out:
                await up.increase(1, {"visits": 1})
            assert isinstance(timed_out.value.__cause__, httpx.ReadTimeout)
            assert len(server.seen) == 1
            assert await up.get(1) == {}  # hangs once too, but a read is always safe
            assert len(server.seen) == 3
    assert "idempotency-key" not in server.seen[0].headers


async def test_requests_carry_auth_a_user_agent_and_keys_only_on_posts(kind: str) -> None:
    properties = {"euid": 1, "properties": {"plan": "gold"}}
    with stub(Answer(body={"code": 0, "message": "success", "data": properties})) as server:
        async with either(kind, base_url=server.url) as up:
            await up.get(1)
            await up.set(1, {"plan": "gold"})
    read, write = server.seen
    assert (read.method, read.path, write.method, write.path) == (
        "GET",
        "/v1/user/property?euid=1",
        "POST",
        "/v1/user/property",
    )
    assert "idempotency-key" not in read.headers and "idempotency-key" in write.headers
    assert read.headers["authorization"].startswith("Basic ")
    assert read.headers["user-agent"].startswith("userprops-client/")
    assert write.body == b'{"euid":1,"type":"set","properties":{"plan":"gold"}}'


# The retry state, without I/O.


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    policy = RetryPolicy(retries=10, backoff=0.5, max_backoff=4.0, max_wait=1000)
    assert [policy.backoff_delay(n, 0.0) for n in range(5)] == [0.0] * 5
    assert [policy.backoff_delay(n, 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff_delay(2, 0.5) == 1.0


def test_attempts_stop_at_the_retry_count_and_the_total_wait() -> None:
    response = httpx.Response(503)
    counted = Attempts(RetryPolicy(retries=2, max_wait=100), replayable=True, draw=lambda: 1.0)
    assert [counted.after_answer(response) for _ in range(3)] == [0.5, 1.0, None]
    budget = Attempts(
        RetryPolicy(retries=10, backoff=1, max_backoff=1, max_wait=2.5),
        replayable=True,
        draw=lambda: 1.0,
    )
    assert [budget.after_answer(response) for _ in range(4)] == [1.0, 1.0, None, None]
    waiting = Attempts(RetryPolicy(), replayable=True, draw=lambda: 0.0)
    assert waiting.after_answer(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert waiting.after_answer(httpx.Response(200)) is None


@pytest.mark.parametrize(
    ("error", "replayable", "retried"),
    [
        (httpx.ConnectError("refused"), False, True),
        (httpx.ConnectTimeout("slow"), False, True),
        (httpx.PoolTimeout("busy"), False, True),
        (httpx.ReadTimeout("slow"), False, False),
        (httpx.RemoteProtocolError("closed"), False, False),
        (httpx.WriteError("reset"), False, False),
        (httpx.ReadTimeout("slow"), True, True),
        (httpx.RemoteProtocolError("closed"), True, True),
        (httpx.ReadError("reset"), True, True),
        (httpx.UnsupportedProtocol("ftp"), True, False),
        (httpx.ProxyError("denied"), True, False),
    ],
)
def test_transport_errors_are_retried_when_the_request_was_not_sent_or_replays_safely(
    error: httpx.TransportError, replayable: bool, retried: bool
) -> None:
    attempts = Attempts(RetryPolicy(), replayable=replayable, draw=lambda: 0.5)
    if retried:
        assert attempts.after_error(error) == 0.25
    else:
        with pytest.raises(TransportError) as given_up:
            attempts.after_error(error)
        assert given_up.value.__cause__ is error


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 120 ") == 120.0
    in_a_minute = format_datetime(datetime(2026, 1, 1, 0, 1, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(in_a_minute, now) == 60.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_a_negative_retry_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(retries=-1)


def test_retries_as_a_number_keep_the_other_defaults() -> None:
    with Client("k", "s", retries=5) as client:
        assert client.retry_policy == RetryPolicy(retries=5)


async def test_answers_of_an_unexpected_shape_are_raised_as_such(kind: str) -> None:
    with stub(Answer(body={"code": 0, "message": "success"})) as server:
        async with either(kind, base_url=server.url) as up:
            with pytest.raises(UnexpectedResponse) as shapeless:
                await up.get(1)  # a read's success without its data
    assert (shapeless.value.code, shapeless.value.status) == (0, 200)
    page = Answer(429, b"<html>slow down</html>", {"Retry-After": "90"})
    with stub(page) as server:
        async with either(kind, base_url=server.url) as up:
            with pytest.raises(RateLimited) as limited:
                await up.get(1)
    assert (limited.value.status, limited.value.retry_after) == (429, 90.0)
    assert len(server.seen) == 1  # 90 s is beyond the test's budget of waiting

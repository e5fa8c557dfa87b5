"""The console's own small router, and everything every console answer goes through:
the session check, the CSRF check, the security headers, and error pages without traces.

:class:`userprops.http.app.App` hands a request here only when its path is no API route
and is ``/admin`` or below it (:func:`mounted`), so the API's hot path is untouched.

Order of checks: unknown path (404) and wrong method (405); static files (no session);
the session: none, expired or ended is a redirect to the login form for a GET and 403 for
a POST; for a POST, a request from another site (``Sec-Fetch-Site``) is 403, the form is
read (at most 64 KiB within ``body_timeout``) and its CSRF token checked (403); then the
page's handler, whose storage work runs in worker threads.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

from userprops import operators
from userprops.config import Settings
from userprops.console import sessions
from userprops.console.render import Asset, environment, load_assets
from userprops.console.sessions import PATH
from userprops.errors import UserpropsError
from userprops.ratelimit import TokenBuckets
from userprops.storage.base import Operator, Storage

log = logging.getLogger("userprops.console")
T = TypeVar("T")

MAX_FORM_BYTES = 64 * 1024
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none';"
    " object-src 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
_SAME_ORIGIN = {"same-origin", "none"}  # Sec-Fetch-Site values of our own pages' requests


def mounted(path: str) -> bool:
    """Whether ``path`` is the console's."""
    return path == PATH or path.startswith(PATH + "/")


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Request:
    """A console request; ``operator``, ``token`` (the session's) and ``csrf`` are set once
    the session is checked, ``form`` once a POST's body is read."""

    method: str
    path: str
    query: dict[str, str]
    cookies: dict[str, str]
    client: str | None
    secure: bool
    htmx: bool
    fetch_site: str | None
    if_none_match: str | None
    raw_query: str
    params: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] = field(default_factory=dict)
    operator: Operator | None = None
    token: str | None = None
    csrf: str = ""

    @property
    def actor(self) -> str:
        assert self.operator is not None
        return self.operator.name


Handler = Callable[["Console", Request], Awaitable[Answer]]

_PARAMS = {
    "slug": "[a-z0-9][a-z0-9_-]{0,63}",
    "key": "[0-9a-f]{24}",
    "euid": "[1-9][0-9]{0,18}",
    "name": "[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
    "verb": "enable|disable",
    "segment": "[a-z][a-z0-9_]{0,127}",
    "webhook": "[1-9][0-9]{0,18}",
    "delivery": "[1-9][0-9]{0,18}",
}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    public: bool = False  # needs no session (the login form, static files)


def route(method: str, path: str, handler: Handler, *, public: bool = False) -> Route:
    """``path`` is below ``/admin``, with ``{param}`` parts matched by :data:`_PARAMS`."""
    regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m[1]}>{_PARAMS[m[1]]})", PATH + path)
    return Route(method, re.compile(regex), handler, public)


class ClientGone(Exception):
    pass


class PageError(Exception):
    """Answer with an error page of this status and message (the message is shown)."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = list(headers)


class Console:
    """The console's pages (:mod:`userprops.console.pages`) over one storage."""

    def __init__(self, settings: Settings) -> None:
        from userprops.console.routes import ROUTES

        self.settings = settings
        self.routes = ROUTES
        self.assets: dict[str, Asset] = load_assets()
        self.templates = environment(self.assets)
        self.storage: Storage | None = None
        self._signer: sessions.Signer | None = None
        rate, burst = settings.console_login_rate, settings.console_login_burst
        self._logins_by_address = TokenBuckets(rate, burst)
        self._logins_by_name = TokenBuckets(rate, burst)

    def start(self, storage: Storage) -> None:
        self.storage = storage

    def stop(self) -> None:
        self.storage = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> int:
        """Answer one request; return its status (for the metrics), 499 when the client
        left before it was answered."""
        request = _request(scope)
        try:
            answer = await self._answer(request, scope, receive)
        except ClientGone:
            return 499
        except PageError as error:
            answer = self.error_page(request, error.status, error.message, error.headers)
        except UserpropsError as error:
            answer = self._failed(request, error)
        except Exception:
            log.exception("console error on %s %s", request.method, request.path)
            message = "Something went wrong; the server's log has the details."
            answer = self.error_page(request, 500, message)
        await _send(send, answer)
        return answer.status

    # Helpers for the pages

    @property
    def db(self) -> Storage:
        if self.storage is None:
            raise PageError(503, "The service is starting or stopping; try again shortly.")
        return self.storage

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(storage, *args, **kwargs)`` in a worker thread."""
        return await asyncio.to_thread(fn, self.db, *args, **kwargs)

    async def signer(self) -> sessions.Signer:
        if self._signer is None:
            self._signer = sessions.Signer(await self.run(operators.signing_key))
        return self._signer

    def render(self, template: str, **context: Any) -> str:
        return self.templates.get_template(template).render(**context)

    def page(
        self,
        request: Request,
        template: str,
        status: int = 200,
        headers: Sequence[tuple[str, str]] = (),
        **context: Any,
    ) -> Answer:
        from userprops.console.pages import NAV

        body = self.render(
            template,
            request=request,
            operator=request.operator,
            csrf=request.csrf,
            nav=NAV,
            **context,
        )
        return Answer(status, body.encode(), list(headers))

    def error_page(
        self, request: Request, status: int, message: str, headers: Sequence[tuple[str, str]] = ()
    ) -> Answer:
        try:
            return self.page(request, "error.html", status, headers, code=status, message=message)
        except Exception:
            log.exception("console error page failed")
            return Answer(status, f"Error {status}".encode(), [("content-type", "text/plain")])

    def cookie(self, request: Request, name: str, value: str, max_age: int) -> tuple[str, str]:
        secure = request.secure or self.settings.console_secure_cookie
        return "set-cookie", sessions.set_cookie(name, value, max_age, secure)

    def login_limited(self, address: str | None, name: str) -> int | None:
        """Take a login attempt from the address's bucket, then the name's; the seconds to
        wait when either is empty. Only names an operator may have get a bucket of their
        own (the others share one), so made-up names cannot fill the memory."""
        wait = self._logins_by_address.take(address)
        if wait is not None:
            return wait
        return self._logins_by_name.take(name if operators.valid_name(name) else "")

    async def session(self, request: Request) -> tuple[Operator, str] | None:
        """The operator and token of the request's live session, if it has one."""
        signer = await self.signer()
        token = signer.unsign("session", request.cookies.get(sessions.SESSION_COOKIE))
        if token is None:
            return None
        operator = await self.run(operators.session_operator, token)
        return None if operator is None else (operator, token)

    # The pipeline

    async def _answer(self, request: Request, scope: dict[str, Any], receive: Any) -> Answer:
        method = request.method
        found, request.params = self._match(method, request.path)
        if not found.public:
            session = await self.session(request)
            if session is None:
                return _unauthenticated(request)
            request.operator, request.token = session
            request.csrf = (await self.signer()).csrf(request.token)
        if method == "POST":
            if request.fetch_site is not None and request.fetch_site not in _SAME_ORIGIN:
                raise PageError(403, "Cross-site form posts are refused.")
            request.form = _form(await _read_body(scope, receive, self.settings.body_timeout))
            if not await self._csrf_ok(request):
                raise PageError(403, "The form's security token is missing or wrong; reload it.")
        return await found.handler(self, request)

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for candidate in self.routes:
            m = candidate.pattern.fullmatch(path)
            if m is not None:
                if candidate.method == method:
                    return candidate, m.groupdict()
                allowed.append(candidate.method)
        if allowed:
            raise PageError(405, "Method not allowed.", [("allow", ", ".join(sorted(allowed)))])
        raise PageError(404, "There is no such page.")

    async def _csrf_ok(self, request: Request) -> bool:
        signer = await self.signer()
        sent = request.form.get("csrf", "")
        if request.token is not None:
            return signer.check("csrf", request.token, sent)
        nonce = signer.unsign("login", request.cookies.get(sessions.LOGIN_COOKIE))
        return nonce is not None and signer.check("login-csrf", nonce, sent)

    def _failed(self, request: Request, error: UserpropsError) -> Answer:
        if error.status == 503:
            message = "The database is unavailable; try again shortly."
            return self.error_page(request, 503, message)
        if error.status >= 500:
            log.error("console: %s on %s %s", error.detail, request.method, request.path)
            return self.error_page(request, error.status, "Something went wrong.")
        return self.error_page(request, error.status, error.detail)


def _request(scope: dict[str, Any]) -> Request:
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name, value)
    client = scope.get("client")
    cookie = headers.get(b"cookie", b"").decode("latin-1")
    site = headers.get(b"sec-fetch-site")
    etag = headers.get(b"if-none-match")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=dict(parse_qsl(scope["query_string"].decode("latin-1"))),
        cookies=sessions.parse_cookies(cookie),
        client=client[0] if client else None,
        secure=scope.get("scheme") == "https",
        htmx=headers.get(b"hx-request") == b"true",
        fetch_site=None if site is None else site.decode("latin-1"),
        if_none_match=None if etag is None else etag.decode("latin-1"),
        raw_query=scope["query_string"].decode("latin-1"),
    )


def _unauthenticated(request: Request) -> Answer:
    if request.method != "GET":
        raise PageError(403, "You are not logged in, or your session ended.")
    asked = request.path + (f"?{request.raw_query}" if request.raw_query else "")
    target = f"{PATH}/login?next={quote(asked, safe='/')}"
    if request.htmx:  # an XHR follows a redirect itself: have htmx load the page instead
        return Answer(401, headers=[("hx-redirect", target)])
    return Answer(303, headers=[("location", target)])


def _form(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise PageError(400, "The form could not be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


async def _read_body(scope: dict[str, Any], receive: Any, timeout: float) -> bytes:
    async def read() -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                raise PageError(413, "The form is too large.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise PageError(408, "The form did not arrive in time.") from None


async def _send(send: Any, answer: Answer) -> None:
    headers = [(k.encode(), v.encode()) for k, v in (*SECURITY_HEADERS, *answer.headers)]
    names = {k for k, _ in answer.headers}
    if "content-type" not in names:
        headers.append((b"content-type", b"text/html; charset=utf-8"))
    if "cache-control" not in names:  # pages hold customer data, sometimes a secret
        headers.append((b"cache-control", b"no-store"))
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})

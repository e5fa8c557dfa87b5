"""Operators: the people who use the admin console (docs/console.md), and their sessions.

Operators are made with the command line only (``userprops operator ...``); a password
is stored as an argon2id hash (argon2-cffi's defaults, RFC 9106's low-memory profile) and
checked in a worker thread by the console. A session is a random token: the database
keeps only its SHA-256, with its operator and expiry, so a copy of the database lets
nobody in. Deleting an operator or giving it a new password ends its sessions in the
same transaction. Every change is in the audit log (:mod:`userprops.audit`).
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from userprops import audit
from userprops.clock import now_ms
from userprops.errors import InvalidParameters, UserpropsError
from userprops.storage.base import Operator, Storage

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
SESSION_KEY = "session"  # the name of the console's signing key in the database


class OperatorNotFound(UserpropsError):
    """No operator of that name: the command line's error (exit status 1). No endpoint
    answers it, so it is no wire code and not in :data:`userprops.errors.CODE_TABLE`."""

    code = 40412
    status = 404
    message = "no such operator"


@dataclass(frozen=True)
class Session:
    """A session just started: ``token`` goes in the cookie, the database has its digest."""

    token: str
    operator: Operator
    expires_at: int  # epoch ms


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _decoy() -> str:
    """A hash to check a password against when the name is unknown, so that the time an
    answer takes does not tell names apart."""
    return _hasher().hash(secrets.token_urlsafe(18))


def new_password() -> str:
    """24 characters from the URL-safe alphabet: 144 random bits."""
    return secrets.token_urlsafe(18)


def valid_name(name: str) -> bool:
    """Whether ``name`` may be an operator's (``cli`` is the audit log's actor for the
    command line, so no operator may be called that)."""
    return NAME_RE.fullmatch(name) is not None and name != audit.CLI


def _checked(name: str, password: str) -> None:
    if not valid_name(name):
        raise InvalidParameters(
            "operator name: 1-64 of a-z, 0-9, _ . @ -, starting with a-z/0-9; not cli"
        )
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidParameters(
            f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters"
            f" (leave it out and one is generated)"
        )


def create(storage: Storage, name: str, password: str, actor: str = audit.CLI) -> Operator:
    """A new operator; :class:`~userprops.errors.Conflict` if the name is taken."""
    _checked(name, password)
    hashed = _hasher().hash(password)
    with storage.transaction() as tx:
        operator = tx.create_operator(name, hashed)
        audit.record(tx, actor, "operator.create", name)
    return operator


def list_all(storage: Storage) -> list[Operator]:
    with storage.read() as tx:
        return tx.list_operators()


def delete(storage: Storage, name: str, actor: str = audit.CLI) -> None:
    """Delete an operator and end its sessions; :class:`OperatorNotFound` if none."""
    with storage.transaction() as tx:
        if not tx.delete_operator(name):
            raise OperatorNotFound(f"no operator {name!r}")
        audit.record(tx, actor, "operator.delete", name)


def reset_password(storage: Storage, name: str, password: str, actor: str = audit.CLI) -> None:
    """Give an operator a new password and end its sessions."""
    _checked(name, password)
    hashed = _hasher().hash(password)
    with storage.transaction() as tx:
        if not tx.set_operator_password(name, hashed):
            raise OperatorNotFound(f"no operator {name!r}")
        audit.record(tx, actor, "operator.reset_password", name)


def verify(storage: Storage, name: str, password: str) -> Operator | None:
    """The operator when ``password`` is theirs, else None (also for an unknown name, after
    the same work). Slow on purpose (argon2): call it from a worker thread."""
    with storage.read() as tx:
        operator = tx.get_operator(name) if valid_name(name) else None
    try:
        _hasher().verify(_decoy() if operator is None else operator.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return operator


def start_session(
    storage: Storage, operator: Operator, ttl_seconds: float, address: str | None
) -> Session:
    """A new session of ``operator`` lasting ``ttl_seconds``; the login is audited, and
    sessions past their expiry are swept."""
    token = secrets.token_urlsafe(32)
    now = now_ms()
    expires = now + round(ttl_seconds * 1000)
    with storage.transaction() as tx:
        tx.delete_expired_sessions(now)
        tx.create_session(_digest(token), operator.id, now, expires)
        audit.record(tx, operator.name, "login", operator.name, address=address)
    return Session(token, operator, expires)


def session_operator(storage: Storage, token: str) -> Operator | None:
    """The operator of a live session token, else None (expired, ended, or never made)."""
    with storage.read() as tx:
        return tx.session_operator(_digest(token), now_ms())


def end_session(storage: Storage, token: str, operator: Operator) -> None:
    with storage.transaction() as tx:
        tx.delete_session(_digest(token))
        audit.record(tx, operator.name, "logout", operator.name)


def record_failed_login(storage: Storage, name: str, address: str | None) -> None:
    """Audit a failed login of an existing operator (names nobody has are not recorded: the
    log would fill with whatever a guesser types)."""
    if not valid_name(name):
        return
    with storage.transaction() as tx:
        if tx.get_operator(name) is not None:
            audit.record(tx, name, "login.failed", name, address=address)


def signing_key(storage: Storage) -> bytes:
    """The console's key for cookies and CSRF tokens: made once per database, on first
    use, so that every server process on it agrees and sessions outlive a restart."""
    with storage.transaction() as tx:
        return bytes.fromhex(tx.console_key(SESSION_KEY, secrets.token_hex(32)))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

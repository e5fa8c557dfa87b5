"""Idempotent retries: the optional ``Idempotency-Key`` header of every POST.

A POST that carries the header opens a :class:`Claim` (its key and a fingerprint of the
method, path and body bytes) for the time of the request; :func:`bind` scopes it to the
data source once the caller is authenticated; the writer passes the request's write job
through :func:`wrap`. Inside the batch transaction the wrapped job looks the key up first:

- absent (or expired): the job runs, and its result is stored under the key in the same
  savepoint, so the answer and the effects are committed together or not at all;
- present with the same fingerprint: the job does not run; the stored result is returned
  and the handler builds the first answer again from it;
- present with another fingerprint: :class:`~userprops.errors.IdempotencyKeyReused`.

A job that fails stores nothing (its savepoint is rolled back with its effects), so a
retry runs it again. A request makes at most one write job; only its first is wrapped.
Expired keys are swept by the writer, a bounded number at a time.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import time
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from userprops import clock
from userprops.errors import IdempotencyKeyReused, InternalError, InvalidParameters
from userprops.schema import encode_json
from userprops.storage.base import Transaction

T = TypeVar("T")

HEADER = b"idempotency-key"
KEY_RE = re.compile(rb"[\x21-\x7e]{1,255}")
SWEEP_INTERVAL = 1.0
SWEEP_BATCH = 10_000

_ENCODER = msgspec.json.Encoder(decimal_format="number")


@dataclass
class Policy:
    """How long answers are kept (``ttl`` seconds), and when expired ones were last swept."""

    ttl: float
    next_sweep: float = 0.0

    def sweep(self, tx: Transaction, now_ms: int) -> None:
        """Delete a bounded batch of expired keys, at most once per ``SWEEP_INTERVAL``."""
        clock = time.monotonic()
        if clock >= self.next_sweep:
            self.next_sweep = clock + SWEEP_INTERVAL
            tx.sweep_idempotent(now_ms, SWEEP_BATCH)


@dataclass
class Claim:
    policy: Policy
    key: bytes
    fingerprint: str
    datasource_id: int | None = None
    used: bool = False


_CLAIM: ContextVar[Claim | None] = ContextVar("userprops_idempotency_claim", default=None)


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256(f"{method}\0{path}\0".encode())
    digest.update(body)
    return digest.hexdigest()


@contextmanager
def claimed(policy: Policy, key: bytes, method: str, path: str, body: bytes) -> Iterator[None]:
    """Open a claim for the POST being handled (the caller checks there is a key)."""
    token = _CLAIM.set(Claim(policy, key, fingerprint(method, path, body)))
    try:
        yield
    finally:
        _CLAIM.reset(token)


def bind(datasource_id: int) -> None:
    """Scope the open claim to the authenticated data source; 55004 for a malformed key
    (1 to 255 printable ASCII characters, no spaces)."""
    claim = _CLAIM.get()
    if claim is None:
        return
    if not KEY_RE.fullmatch(claim.key):
        raise InvalidParameters("Idempotency-Key must be 1 to 255 printable ASCII characters")
    claim.datasource_id = datasource_id


def wrap(job: Callable[[Transaction], T]) -> Callable[[Transaction], T]:
    """``job`` made idempotent under the open claim; ``job`` itself when there is none."""
    claim = _CLAIM.get()
    if claim is None or claim.datasource_id is None or claim.used:
        return job
    claim.used = True
    datasource_id, key = claim.datasource_id, claim.key.decode("ascii")
    decoder = msgspec.json.Decoder(_result_type(job), float_hook=Decimal)

    def idempotent_job(tx: Transaction) -> T:
        now_ms = clock.now_ms()
        found = tx.get_idempotent(datasource_id, key, now_ms)
        if found is not None:
            if found[0] != claim.fingerprint:
                raise IdempotencyKeyReused()
            try:
                return decoder.decode(found[1])  # type: ignore[no-any-return]
            except msgspec.DecodeError:
                raise InternalError("stored idempotent answer is unreadable") from None
        result = job(tx)
        expires_ms = now_ms + int(claim.policy.ttl * 1000)
        tx.put_idempotent(
            datasource_id, key, claim.fingerprint, encode_json(_ENCODER, result), expires_ms
        )
        claim.policy.sweep(tx, now_ms)
        return result

    return idempotent_job


def _result_type(job: Callable[..., Any]) -> Any:
    """A job's return annotation tells how its stored result is decoded (a callable
    object's is that of its ``__call__``)."""
    function = job if inspect.isfunction(job) else type(job).__call__
    try:
        return typing.get_type_hints(function).get("return", Any)
    except Exception:  # an annotation that cannot be resolved: plain JSON
        return Any

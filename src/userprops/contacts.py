"""Contacts (docs/contacts-events.md): ``POST /v1/user/contact`` and ``GET /v1/user/contact``.

A contact is how a channel reaches a user: ``email``, ``mobile_phone``, ``landline_phone``,
``whatsapp_phone``. A value of one contact name belongs to at most one user of a project
(the database enforces it). Order of checks: body (55004), ``euid`` (40007/55004),
``contacts`` a non-empty object whose names are all known (55004, the whole request),
the user (404), then each contact: a string (55102), plausible (55102), not held by
another user (55014). A request is one writer job: its accepted contacts are applied
together, after the commit, or not at all.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from userprops.auth import Principal
from userprops.errors import (
    ContactExists,
    ErrorItem,
    InvalidProperties,
    UserNotFound,
)
from userprops.schema import Rejected
from userprops.storage.base import Storage, Transaction
from userprops.writer import Writer

EMAIL = "email"
PHONES = ("mobile_phone", "landline_phone", "whatsapp_phone")
CONTACT_NAMES = (EMAIL, *PHONES)
MAX_EMAIL_LENGTH = 254
# E.164 allows 15 digits; extensions and national prefixes push real numbers a little over.
PHONE_RE = re.compile(r"\+?[0-9]{4,20}")
# One @, a local part and a domain of dot-separated labels; no spaces, control characters
# or lone surrogates (which no backend stores).
EMAIL_RE = re.compile(
    "[^@\\s\x00-\x1f\x7f\ud800-\udfff]+@"
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ContactRequest:
    euid: int
    contacts: dict[str, Any]


def check_contact(name: str, raw: Any) -> str:
    """The value to store (``""`` clears), or :class:`Rejected` when implausible."""
    if not isinstance(raw, str):
        raise Rejected('contact value must be a string ("" clears it)')
    if raw == "":
        return raw
    if name == EMAIL:
        if len(raw) > MAX_EMAIL_LENGTH or not EMAIL_RE.fullmatch(raw):
            raise Rejected("not a plausible email address (local@domain.tld)")
    elif not PHONE_RE.fullmatch(raw):
        raise Rejected("not a plausible phone number (4 to 20 digits, optional leading +)")
    return raw


def item(name: str, code: int, message: str) -> ErrorItem:
    """The error item of a rejected contact."""
    return ErrorItem(contact=name, code=code, message=message)


class ContactBook:
    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def set_contacts(self, who: Principal, request: ContactRequest) -> list[ErrorItem]:
        """Apply a request; return the rejected contacts (empty on full success).

        Raises :class:`UserNotFound`; when every contact is rejected, 55014 if each was
        held by another user, else 55102, both with the ``errors``.
        """
        errors: list[ErrorItem] = []
        wanted: dict[str, str] = {}
        for name, raw in request.contacts.items():
            try:
                wanted[name] = check_contact(name, raw)
            except Rejected as reason:
                errors.append(item(name, InvalidProperties.code, reason.reason))
        pid, euid = who.project_id, request.euid

        def job(tx: Transaction) -> list[ErrorItem]:
            return _apply_contacts(tx, pid, euid, wanted)

        # Submitted even when nothing is left to write: an unknown user is 404 first.
        errors += await self._writer.submit(job)
        order = list(request.contacts)
        errors.sort(key=lambda e: order.index(e.contact or ""))
        if len(errors) == len(request.contacts):
            if all(e.code == ContactExists.code for e in errors):
                raise ContactExists(errors=errors)
            raise InvalidProperties(errors=errors)
        return errors

    async def get_contacts(self, who: Principal, euid: int) -> dict[str, Any]:
        return await asyncio.to_thread(read_contacts, self._writer.storage, who.project_id, euid)


def read_contacts(storage: Storage, project_id: int, euid: int) -> dict[str, Any]:
    """``{"euid": ..., "contacts": {name: value}}``; 404 unless the user is in the project."""
    with storage.read() as tx:
        if not tx.has_user(project_id, euid):
            raise UserNotFound()
        return {"euid": euid, "contacts": tx.get_contacts(project_id, euid)}


def _apply_contacts(
    tx: Transaction, project_id: int, euid: int, wanted: dict[str, str]
) -> list[ErrorItem]:
    if not tx.lock_user(project_id, euid):
        raise UserNotFound()
    errors: list[ErrorItem] = []
    for name, value in wanted.items():
        if value == "":
            tx.clear_contact(project_id, euid, name)
            continue
        holder = tx.bind_contact(project_id, euid, name, value)
        if holder != euid:
            errors.append(item(name, ContactExists.code, f"{name} belongs to another user"))
    return errors

"""Users as a whole: finding one by an identity without creating it, listing a project's
users, and erasing one (docs/bulk.md, "Erasure").

Erasing a user removes its attribute values, identities, contacts and events, and empties
the values of its changes in the history, in one transaction that also records one change
of op ``user.deleted`` (no values) for the feed and webhooks. Afterwards the EUID is
unknown everywhere (40404) and its identity values can register a new user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from userprops.errors import UserNotFound
from userprops.storage.base import NewChange, Storage, Transaction

ERASED = "user.deleted"
IDENTITY_NAMES = ("user_id", "anonymous_id", "registration_id")
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class LookupQuery:
    """``GET /v1/user/lookup``: the user holding an identity value."""

    identity_name: str
    identity_value: str


Admit = Callable[[Transaction, list[int]], int]
"""Puts users just created into the segments a user without values matches; returns how
many changes it recorded (:func:`userprops.segments.admit`)."""


def run_register_jobs(
    tx: Transaction, jobs: Sequence[RegisterJob]
) -> list[tuple[dict[str, int], int]]:
    """Each job's value -> EUID, from one resolution of every value of the group (a value
    in two requests of a group is one user), and the changes recorded for its new users
    (a user made for a value of two jobs is the first one's)."""
    keys = [(j.project_id, j.identity_name, v) for j in jobs for v in j.values]
    made: list[int] = []
    resolved = tx.resolve_identities(keys, made)
    fresh = set(made)
    results = []
    for job in jobs:
        found = {v: resolved[job.project_id, job.identity_name, v] for v in job.values}
        new = [e for e in dict.fromkeys(found.values()) if e in fresh]
        fresh.difference_update(new)
        entered = job.admit(tx, new) if new and job.admit is not None else 0
        results.append((found, entered))
    return results


@dataclass(eq=False)
class RegisterJob:
    """The write of one ``POST /v1/user/register``: the EUID of each identity value,
    creating users for unknown ones. The writer runs consecutive register jobs of a batch
    together through :attr:`run_many`, which resolves all their values at once
    (:meth:`~userprops.storage.base.Transaction.resolve_identities`)."""

    project_id: int
    identity_name: str
    values: list[str]
    admit: Admit | None = None

    def __call__(self, tx: Transaction) -> tuple[dict[str, int], int]:
        (result,) = run_register_jobs(tx, [self])
        return result

    run_many = staticmethod(run_register_jobs)


def erase(tx: Transaction, project_id: int, euid: int, source: str) -> None:
    """Erase a user of the project in ``tx`` (see the module); 40404 when there is none."""
    if not tx.erase_user(project_id, euid):
        raise UserNotFound()
    tx.record_changes([NewChange(project_id, euid, "", ERASED, None, None, None, source)])


def lookup(storage: Storage, project_id: int, query: LookupQuery) -> dict[str, Any]:
    """``{"euid"}`` of the user holding the identity value; 40404 when none does. Nothing
    is created."""
    with storage.read() as tx:
        euid = tx.find_identity(project_id, query.identity_name, query.identity_value)
    if euid is None:
        raise UserNotFound(f"no user with {query.identity_name} {query.identity_value!r}")
    return {"euid": euid}


def list_page(storage: Storage, project_id: int, after: int, limit: int) -> dict[str, Any]:
    """``{"euids", "next_after"}``: the project's users above ``after``, ascending; pass
    ``next_after`` as the next ``after`` (None on the last page)."""
    with storage.read() as tx:
        euids = tx.list_users(project_id, after, limit + 1)
    page = euids[:limit]
    return {"euids": page, "next_after": page[-1] if len(euids) > limit else None}

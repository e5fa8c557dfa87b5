"""Preparing a database for a run: a project and data source made with the CLI
(``--json``), users registered over HTTP, and the verification read-back."""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

from userprops.schema import AttrType, decode
from userprops.storage import open_storage


def cli(*args: str) -> Any:
    """Run ``userprops ARGS --json`` and return its JSON document."""
    done = subprocess.run(
        [sys.executable, "-m", "userprops", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"userprops {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def create_tenant(url: str, slug: str) -> str:
    """A new project and data source; returns the Basic token ``base64(key:secret)``."""
    cli("project", "create", slug, "--database", url)
    creds = cli("datasource", "create", "bench", "--project", slug, "--database", url)
    raw = f"{creds['api_key']}:{creds['api_secret']}".encode()
    return base64.b64encode(raw).decode()


def register_users(port: int, token: str, count: int, prefix: str) -> range:
    """Register ``count`` users through the API (100 per call); return their EUIDs, which
    are consecutive (in some order) on a database that nobody else writes to."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    euids: list[int] = []
    for start in range(0, count, 100):
        values = [f"{prefix}-{i}" for i in range(start, min(start + 100, count))]
        body = json.dumps({"identity_name": "user_id", "identity_values": values})
        conn.request("POST", "/v1/user/register", body, headers)
        answer = json.loads(conn.getresponse().read())
        if answer.get("code") != 0:
            raise RuntimeError(f"register failed: {answer}")
        euids.extend(item["euid"] for item in answer["data"])
    conn.close()
    # Consecutive as a set: PostgreSQL makes a group's users in the order of their identity
    # values (so that concurrent registers lock in one order), not in the request's.
    first = min(euids)
    if sorted(euids) != list(range(first, first + count)):
        raise RuntimeError("registered EUIDs are not consecutive; is the database shared?")
    return range(first, first + count)


def stored_sums(url: str, slug: str, euids: range, names: list[str]) -> dict[str, Decimal]:
    """The sum over ``euids`` of each NUMBER attribute ``names``, read through the storage
    contract (so it works on every backend)."""
    sums = dict.fromkeys(names, Decimal(0))
    storage = open_storage(url)
    try:
        with storage.read() as tx:
            project = tx.get_project(slug)
            if project is None:
                raise RuntimeError(f"project {slug!r} is gone")
            for euid in euids:
                for name, value in tx.get_values(project.id, euid, names).items():
                    sums[name] += Decimal(decode(AttrType.NUMBER, value.text))  # type: ignore[arg-type]
    finally:
        storage.close()
    return sums

"""Templates and static files of the console: a Jinja2 environment that escapes every
value it prints, and the files of ``static/``, read once, each served under a URL that
carries its digest so that browsers may keep it for a year."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import jinja2
import msgspec

from userprops.console.sessions import PATH

STATIC = f"{PATH}/static/"
_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".LICENSE": "text/plain; charset=utf-8",
}
_JSON = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # the start of the body's SHA-256, in its URL and its ETag


def load_assets() -> dict[str, Asset]:
    found = {}
    for entry in (resources.files("userprops.console") / "static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            found[entry.name] = Asset(body, _TYPES[suffix], hashlib.sha256(body).hexdigest()[:16])
    return found


def when(millis: int | None) -> str:
    """Epoch milliseconds as UTC to the second: ``2024-05-01 12:00:00``."""
    if millis is None:
        return ""
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(text: str) -> str:
    """A stored ``created_at`` (ISO 8601 in UTC) as ``when`` writes times."""
    return text.replace("T", " ").removesuffix("+00:00")


def as_json(value: Any, indent: int = 0) -> str:
    """A value as the read API writes it (exact decimals), a string as itself; the
    template escapes it. ``indent``: over several lines, indented so."""
    if isinstance(value, str):
        return value
    encoded = _JSON.encode(value)
    return (msgspec.json.format(encoded, indent=indent) if indent else encoded).decode()


def environment(assets: dict[str, Asset]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("userprops.console", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def static(name: str) -> str:
        return f"{STATIC}{name}?v={assets[name].version}"

    env.globals["static"] = static
    env.globals["PATH"] = PATH
    env.filters["when"] = when
    env.filters["iso"] = iso
    env.filters["json"] = as_json
    return env

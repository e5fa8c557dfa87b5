"""Settings: one frozen object built from CLI flags and ``USERPROPS_*`` variables.

Nothing reads the environment at import time; :meth:`Settings.from_env` is called by the
front ends, and tests build :class:`Settings` directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_DATABASE = "sqlite:///userprops.db"


@dataclass(frozen=True)
class Limits:
    """Input limits of the wire contract (docs/schema.md, docs/http-api.md)."""

    max_string_length: int = 256
    max_list_length: int = 500
    max_stored_list_length: int = 10_000
    max_properties: int = 500
    max_identity_values: int = 100
    max_body_bytes: int = 1024 * 1024
    max_events: int = 100


@dataclass(frozen=True)
class Settings:
    """Everything the service can be told. Field ``x`` has the environment twin
    ``USERPROPS_X``; docs/configuration.md lists them all (checked by a test)."""

    database: str = DEFAULT_DATABASE
    host: str = "127.0.0.1"
    port: int = 8000
    max_string_length: int = 256
    max_list_length: int = 500
    max_stored_list_length: int = 10_000
    max_properties: int = 500
    max_body_bytes: int = 1024 * 1024
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 30.0
    send_timeout: float = 30.0
    max_connections: int = 1000
    auth_cache_ttl: float = 5.0
    batch_max: int = 512
    db_timeout: float = 5.0
    db_pool_size: int = 10
    event_sweep_interval: float = 3600.0
    log_level: str = "info"
    idempotency_ttl: float = 86400.0
    auth_fail_rate: float = 1.0
    auth_fail_burst: float = 60.0
    rate_limit: float = 50000.0
    rate_burst: float = 100000.0

    @property
    def limits(self) -> Limits:
        return Limits(
            max_string_length=self.max_string_length,
            max_list_length=self.max_list_length,
            max_stored_list_length=self.max_stored_list_length,
            max_properties=self.max_properties,
            max_body_bytes=self.max_body_bytes,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``USERPROPS_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"USERPROPS_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.type, raw, f.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _convert(kind: Any, raw: str, name: str) -> Any:
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"USERPROPS_{name.upper()}: not a number: {raw!r}") from None
    return raw

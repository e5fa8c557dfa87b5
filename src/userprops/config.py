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
    max_batch: int = 1000


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
    segment_sweep_interval: float = 3600.0
    log_level: str = "info"
    idempotency_ttl: float = 86400.0
    auth_fail_rate: float = 1.0
    auth_fail_burst: float = 60.0
    rate_limit: float = 50000.0
    rate_burst: float = 100000.0
    history: bool = True
    console: bool = True
    console_session_ttl: float = 43200.0
    console_login_rate: float = 0.1
    console_login_burst: float = 10.0
    console_secure_cookie: bool = False
    deliveries: bool = True
    webhook_timeout: float = 10.0
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_disable_after: float = 432000.0
    webhook_disable_failures: int = 10
    webhook_concurrency: int = 32
    webhook_retention: float = 604800.0

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


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(kind: Any, raw: str, name: str) -> Any:
    if kind in (bool, "bool"):
        if raw.lower() in _TRUE | _FALSE:
            return raw.lower() in _TRUE
        raise ValueError(f"USERPROPS_{name.upper()}: not one of 1/0, true/false, on/off: {raw!r}")
    try:
        if kind in (int, "int"):
            return int(raw)
        if kind in (float, "float"):
            return float(raw)
    except ValueError:
        raise ValueError(f"USERPROPS_{name.upper()}: not a number: {raw!r}") from None
    return raw

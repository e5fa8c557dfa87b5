"""Query plans PostgreSQL makes, as auto_explain reports them (tests/storage)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg

Conn = psycopg.Connection[tuple[object, ...]]


def explained(conn: Conn, mode: str, run: Callable[[Conn], None]) -> list[str]:
    """The plan of every statement ``run`` makes, nested ones included, each run six
    times: psycopg prepares a statement on its fifth run, PL/pgSQL plans generic ones
    after five."""
    plans: list[str] = []
    conn.add_notice_handler(lambda diag: plans.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting in (
        "auto_explain.log_min_duration = 0",
        "auto_explain.log_nested_statements = on",
        "auto_explain.log_level = notice",
        f"plan_cache_mode = {mode}",
    ):
        conn.execute(f"SET {setting}")
    # psycopg prepares a statement on its fifth run, PL/pgSQL plans generic ones after five.
    for _ in range(6):
        run(conn)
    conn.execute("RESET ALL")
    return plans

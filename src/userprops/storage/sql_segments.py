"""The segment statements of the storage contract, written once for both backends and
mixed into :class:`~userprops.storage.sql.SqlTransaction`: queries compiled from
conditions (:mod:`userprops.storage.segment_sql`), saved segments and their members.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, ClassVar

from userprops.clock import now_text
from userprops.conditions import Condition, Not
from userprops.storage.base import StoredSegment
from userprops.storage.segment_sql import Compiler, Driver, Fragment

_SEGMENT = (
    "SELECT id, project_id, name, condition, built_to, quiet, created_at, updated_at, checked_ms"
    " FROM segments"
)
_BUMP = "UPDATE projects SET segments_version = segments_version + 1 WHERE id = ?"


def _segment(row: Any) -> StoredSegment:
    sid, pid, name, condition, built_to, quiet, created, updated, checked = row
    return StoredSegment(
        sid, pid, name, condition, built_to, bool(quiet), created, updated, checked
    )


class SegmentStatements(abc.ABC):
    """Needs the shared helpers of :class:`~userprops.storage.sql.SqlTransaction`; a
    backend spells three things of the compiled queries its own way (the class
    attributes, see :class:`~userprops.storage.segment_sql.Dialect`)."""

    position: ClassVar[str] = "instr({0}, {1})"
    key_index: ClassVar[str] = ""
    user_index: ClassVar[str] = ""
    join: ClassVar[str] = "JOIN"
    collate: ClassVar[str] = ""

    @abc.abstractmethod
    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abc.abstractmethod
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    @abc.abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    @abc.abstractmethod
    def _many(self, sql: str, rows: Any) -> None: ...

    @abc.abstractmethod
    def _in_list(self, column: str, values: Sequence[Any]) -> Fragment:
        """``column`` is one of ``values``, any number of them, as one parameter."""

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """A segment query: its plan depends on the values (PostgreSQL plans it for
        them each time, never once for any values)."""
        return self._all(sql, params)

    # Queries

    def _compiler(self, project_id: int, now: datetime) -> Compiler:
        return Compiler(self, project_id, now, self._count_upto)

    def _count_upto(self, driver: Driver, cap: int) -> int:
        sql, params = driver.select(None)
        return int(self._query(f"SELECT count(*) FROM ({sql} LIMIT ?) t", [*params, cap])[0][0])

    def count_matching(self, project_id: int, cond: Condition, now: datetime) -> int:
        compiler = self._compiler(project_id, now)
        plan = compiler.plan(cond, paged=False)
        if plan.driver is None and isinstance(cond, Not):
            # The complement of what has a driver: every user, less its matches.
            inner = compiler.plan(cond.item, paged=False)
            if inner.driver is not None:
                total = self._query(*compiler.users())[0][0]
                return int(total) - int(self._query(*compiler.count(inner))[0][0])
        return int(self._query(*compiler.count(plan))[0][0])

    def match_page(
        self, project_id: int, cond: Condition, now: datetime, after: int, limit: int
    ) -> list[int]:
        compiler = self._compiler(project_id, now)
        sql, params = compiler.page(compiler.plan(cond, paged=True), after, limit)
        return [int(row[0]) for row in self._query(sql, params)]

    def match_span(
        self, project_id: int, cond: Condition, now: datetime, low: int, high: int
    ) -> list[int]:
        sql, params = self._compiler(project_id, now).span(cond, low, high)
        return [int(row[0]) for row in self._query(sql, params)]

    def user_after(self, project_id: int, after: int, skip: int) -> int | None:
        row = self._one(
            "SELECT euid FROM users WHERE project_id = ? AND euid > ? ORDER BY euid"
            " LIMIT 1 OFFSET ?",
            (project_id, after, skip - 1),
        )
        return None if row is None else int(row[0])

    # Saved segments

    def save_segment(
        self, project_id: int, name: str, condition: str, at_ms: int
    ) -> tuple[StoredSegment, bool]:
        stamp = now_text()
        existing = self.get_segment(project_id, name)
        if existing is None:
            row = self._one(
                "INSERT INTO segments (project_id, name, condition, built_to, quiet,"
                " created_at, updated_at, checked_ms) VALUES (?, ?, ?, 0, TRUE, ?, ?, ?)"
                " RETURNING id",
                (project_id, name, condition, stamp, stamp, at_ms),
            )
            saved = StoredSegment(
                int(row[0]), project_id, name, condition, 0, True, stamp, stamp, at_ms
            )
        else:
            # A replaced condition's build records changes, unless the first build of the
            # segment was still running (its members were never complete).
            quiet = existing.quiet
            self._execute(
                "UPDATE segments SET condition = ?, built_to = 0, quiet = ?, updated_at = ?,"
                " checked_ms = ? WHERE id = ?",
                (condition, quiet, stamp, at_ms, existing.id),
            )
            saved = existing._replace(
                condition=condition, built_to=0, updated_at=stamp, checked_ms=at_ms
            )
        self._execute(_BUMP, (project_id,))
        return saved, existing is None

    def get_segment(self, project_id: int, name: str) -> StoredSegment | None:
        row = self._one(_SEGMENT + " WHERE project_id = ? AND name = ?", (project_id, name))
        return None if row is None else _segment(row)

    def list_segments(self, project_id: int) -> list[StoredSegment]:
        rows = self._all(
            _SEGMENT + f" WHERE project_id = ? ORDER BY name{self.collate}", (project_id,)
        )
        return [_segment(row) for row in rows]

    def segments_building(self) -> list[StoredSegment]:
        rows = self._all(_SEGMENT + " WHERE built_to IS NOT NULL ORDER BY id")
        return [_segment(row) for row in rows]

    def set_segment_built(self, segment_id: int, built_to: int | None) -> None:
        row = self._one(
            "UPDATE segments SET built_to = ?, quiet = (quiet AND ?)"
            " WHERE id = ? RETURNING project_id",
            (built_to, built_to is not None, segment_id),
        )
        if row is not None:
            self._execute(_BUMP, (row[0],))

    def rebuild_segment(self, segment_id: int, at_ms: int) -> None:
        row = self._one(
            "UPDATE segments SET built_to = 0, quiet = FALSE, checked_ms = ? WHERE id = ?"
            " RETURNING project_id",
            (at_ms, segment_id),
        )
        if row is not None:
            self._execute(_BUMP, (row[0],))

    def mark_segment_checked(self, segment_id: int, since_ms: int, at_ms: int) -> bool:
        row = self._one(
            "UPDATE segments SET checked_ms = ? WHERE id = ? AND checked_ms = ?"
            " AND built_to IS NULL RETURNING id",
            (at_ms, segment_id, since_ms),
        )
        return row is not None

    def lock_segments(self, project_id: int) -> None:  # noqa: B027 (PostgreSQL overrides)
        """SQLite's write transaction holds the whole database already."""

    def segments_versions(self, project_ids: Collection[int]) -> dict[int, int]:
        if not project_ids:
            return {}
        match, params = self._in_list("id", sorted(project_ids))
        rows = self._all("SELECT id, segments_version FROM projects WHERE " + match, params)
        return {int(pid): int(version) for pid, version in rows}

    # Members

    def members_between(self, project_id: int, segment_id: int, low: int, high: int) -> list[int]:
        rows = self._all(
            "SELECT euid FROM segment_members WHERE project_id = ? AND segment_id = ?"
            " AND euid > ? AND euid <= ? ORDER BY euid",
            (project_id, segment_id, low, high),
        )
        return [int(row[0]) for row in rows]

    def write_members(
        self,
        entered: Collection[tuple[int, int, int]],
        left: Collection[tuple[int, int, int]],
    ) -> None:
        if left:
            self._many(
                "DELETE FROM segment_members WHERE project_id = ? AND segment_id = ? AND euid = ?",
                list(left),
            )
        if entered:
            self._many(
                "INSERT INTO segment_members (project_id, segment_id, euid) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                list(entered),
            )

    def list_members(self, project_id: int, segment_id: int, after: int, limit: int) -> list[int]:
        rows = self._all(
            "SELECT euid FROM segment_members WHERE project_id = ? AND segment_id = ?"
            " AND euid > ? ORDER BY euid LIMIT ?",
            (project_id, segment_id, after, limit),
        )
        return [int(row[0]) for row in rows]

    def count_members(self, project_id: int, segment_id: int) -> int:
        row = self._one(
            "SELECT count(*) FROM segment_members WHERE project_id = ? AND segment_id = ?",
            (project_id, segment_id),
        )
        return int(row[0])

    def user_segments(self, project_id: int, euid: int) -> list[str]:
        rows = self._all(
            "SELECT s.name FROM segment_members m JOIN segments s ON s.id = m.segment_id"
            f" WHERE m.project_id = ? AND m.euid = ? ORDER BY s.name{self.collate}",
            (project_id, euid),
        )
        return [str(row[0]) for row in rows]

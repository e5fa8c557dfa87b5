"""Segment conditions compiled to SQL, the same on both backends (docs/segments.md, "How
conditions run").

Only parameters carry values: the SQL text is built from constants of this module and
the shape of the condition, never from its text. A leaf becomes a probe of one user's
row, ``EXISTS (SELECT 1 FROM user_values v WHERE v.project_id = ? AND v.name = ? AND
v.euid = <the user> AND <v.sort_key compared with keys>)`` (LIST leaves count rows of
``user_list_items``); ``and``, ``or`` and ``not`` become SQL's.

Run over every user of a project, that costs a probe per user and leaf; so a query starts
instead from a **driver**: the index range of one leaf (``user_values_by_key``, keyed by
(project, attribute, sort key, EUID)) that holds every match, and probes only those
candidates for the rest of the condition (the residual). For an ``and`` the driver is the
child with the fewest candidates, counted at query time up to :data:`COUNT_CAP` rows; an
``or`` unions its children's drivers; a ``not`` has none. A page of EUIDs prefers a driver
that yields EUIDs in order (an equality, whose index entries are sorted by EUID, or an
attribute's entries in ``user_values_by_user``, sorted by EUID), so it stops after the
page. Without any driver the query scans the project's users in EUID order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from userprops.conditions import And, Condition, Leaf, Not, Op, Or
from userprops.keys import STRING_KEY_CHARS, datetime_key, decimal_key, string_key
from userprops.schema import AttrType, Typed

COUNT_CAP = 10_000
"""Candidates counted per driver when choosing one; past it a driver is 'large'."""

Fragment = tuple[str, list[Any]]


class Dialect(Protocol):
    """What a backend spells its own way (:class:`~userprops.storage.sql.SqlTransaction`)."""

    position: ClassVar[str]
    """``position(haystack, needle)``, 1-based, 0 when absent: ``{0}`` and ``{1}``."""
    key_index: ClassVar[str]
    """Appended to ``user_values <alias>`` to read it by (attribute, sort key)."""
    user_index: ClassVar[str]
    """Appended to ``user_values <alias>`` to read it by (attribute, EUID)."""
    join: ClassVar[str]
    """The join that keeps the candidates as the outer loop (SQLite: ``CROSS JOIN``)."""

    def _in_list(self, column: str, values: Sequence[Any]) -> Fragment:
        """``column`` is one of ``values`` (any number of them, one parameter)."""
        ...


@dataclass
class Driver:
    """Candidate EUIDs of a condition: ``SELECT d.euid FROM <source> WHERE <where>``, or a
    union of such (``branches``). ``ordered``: they come in EUID order; ``exact``: they
    are exactly the condition's matches; ``countable``: counting the first few is cheap
    (an index range holding only candidates); ``scan``: the same candidates in EUID
    order, read through ``user_values_by_user``, for large unordered drivers."""

    source: str = ""
    where: str = ""
    params: list[Any] = field(default_factory=list)
    ordered: bool = False
    exact: bool = True
    countable: bool = True
    distinct: bool = False
    scan: Driver | None = None
    branches: tuple[Driver, ...] = ()

    def select(self, after: int | None) -> Fragment:
        """The SELECT of ``euid``, above ``after`` where given."""
        if self.branches:
            parts = [branch.select(after) for branch in self.branches]
            return " UNION ".join(sql for sql, _ in parts), [p for _, ps in parts for p in ps]
        sql = f"SELECT {'DISTINCT ' if self.distinct else ''}d.euid AS euid FROM {self.source}"
        sql += f" WHERE {self.where}"
        params = list(self.params)
        if after is not None:
            sql += " AND d.euid > ?"
            params.append(after)
        return sql, params


@dataclass
class Plan:
    """How to run a condition: candidates from ``driver`` (None: every user of the
    project), each checked against ``residual`` (None: nothing left to check)."""

    driver: Driver | None
    residual: Condition | None


class Compiler:
    """Compiles conditions of one project, at instant ``now``, for a backend's dialect.
    ``count_upto(driver, cap)`` counts a driver's candidates, at most ``cap``."""

    def __init__(
        self,
        dialect: Dialect,
        project_id: int,
        now: datetime,
        count_upto: Callable[[Driver, int], int],
    ) -> None:
        self.d = dialect
        self.project_id = project_id
        self.now = now
        self._count_upto = count_upto
        self._counted: dict[int, int] = {}
        self._aliases = 0
        self._floor: int | None = None  # probes of a page: only users above it

    # Whole statements

    def count(self, plan: Plan) -> Fragment:
        """``SELECT count(*)`` of the matches."""
        source, params = self._candidates(plan.driver, None)
        (joins, on), (where, more) = self._joined(plan.residual, "x.euid")
        sql = f"SELECT count(*) FROM ({source}) x{joins} WHERE {where}"
        return sql, params + on + more

    def page(self, plan: Plan, after: int, limit: int) -> Fragment:
        """The first ``limit`` matching EUIDs above ``after``, ascending."""
        # Probes as EXISTS: as joins, SQLite carries the bound on EUIDs over to the joined
        # rows and reads them as a range instead of probing them. Each probe repeats the
        # bound itself: PostgreSQL may merge the candidates with an attribute's rows in
        # EUID order, and then starts those at the bound too, not at the first user.
        source, params = self._candidates(plan.driver, after)
        self._floor = after
        try:
            where, more = self.expr(plan.residual, "x.euid")
        finally:
            self._floor = None
        sql = f"SELECT x.euid FROM ({source}) x WHERE {where} ORDER BY x.euid LIMIT ?"
        return sql, [*params, *more, limit]

    def span(self, cond: Condition, low: int, high: int) -> Fragment:
        """Every matching EUID in ``low < euid <= high``, ascending: the project's users in
        that range, each probed (how saved segments are built, a range at a time)."""
        where, params = self.expr(cond, "u.euid")  # EXISTS, as in page()
        sql = (
            "SELECT u.euid FROM users u WHERE u.project_id = ? AND u.euid > ? AND u.euid <= ?"
            f" AND {where} ORDER BY u.euid"
        )
        return sql, [self.project_id, low, high, *params]

    def _joined(self, residual: Condition | None, outer: str) -> tuple[Fragment, Fragment]:
        """``residual`` over the user ``outer`` as joins and a WHERE: each of its leaves
        that needs the attribute's row (a STRING, NUMBER, BOOL or DATETIME leaf but
        ``not_set``), at its top or in its top ``and``, is a join on that row, which is
        one per user and attribute; the rest is a WHERE. A join costs SQLite less than the
        same probe as ``EXISTS`` (a subroutine call per candidate); the driver stays first
        (``Dialect.join``)."""
        items = (
            [residual]
            if isinstance(residual, Leaf)
            else list(residual.items)
            if isinstance(residual, And)
            else []
        )
        joined = [
            i
            for i in items
            if isinstance(i, Leaf) and i.kind is not AttrType.LIST and i.op is not Op.NOT_SET
        ]
        rest = [i for i in items if i not in joined] if items else [residual]
        sql, params = "", []
        for leaf in joined:
            a = self._alias("v")
            sql += (
                f" {self.d.join} user_values {a}{self.d.user_index} ON {a}.project_id = ?"
                f" AND {a}.name = ? AND {a}.euid = {outer} AND {a}.sort_key IS NOT NULL"
            )
            params += [self.project_id, leaf.name]
            pred, more = self._scalar(leaf, a)
            if pred:
                sql += f" AND {pred}"
                params += more
        remaining = [r for r in rest if r is not None]
        cond = (
            None
            if not remaining
            else remaining[0]
            if len(remaining) == 1
            else And(tuple(remaining))
        )
        return (sql, params), self.expr(cond, outer)

    def _candidates(self, driver: Driver | None, after: int | None) -> Fragment:
        if driver is not None:
            return driver.select(after)
        sql = "SELECT u.euid AS euid FROM users u WHERE u.project_id = ?"
        params: list[Any] = [self.project_id]
        if after is not None:
            sql += " AND u.euid > ?"
            params.append(after)
        return sql, params

    def users(self) -> Fragment:
        return "SELECT count(*) FROM users WHERE project_id = ?", [self.project_id]

    # Plans

    def plan(self, cond: Condition, *, paged: bool) -> Plan:
        """The driver and residual for ``cond``; ``paged`` prefers drivers in EUID order."""
        if isinstance(cond, Leaf):
            driver = self.leaf_driver(cond)
            if driver is None:
                return Plan(None, cond)
            if paged and not driver.ordered and self._large(driver) and driver.scan:
                driver = driver.scan
            return Plan(driver, None if driver.exact else cond)
        if isinstance(cond, And):
            return self._plan_and(cond, paged)
        if isinstance(cond, Or):
            plans = [self.plan(item, paged=False) for item in cond.items]
            drivers = [p.driver for p in plans]
            if any(d is None for d in drivers):
                return Plan(None, cond)
            union = Driver(branches=tuple(d for d in drivers if d is not None))
            union.exact = all(p.residual is None for p in plans)
            if paged and self._large(union):
                return Plan(None, cond)  # a scan in EUID order stops after the page
            return Plan(union, None if union.exact else cond)
        return Plan(None, cond)

    def _plan_and(self, cond: And, paged: bool) -> Plan:
        best: tuple[tuple[int, ...], int, Plan] | None = None
        for index, item in enumerate(cond.items):
            plan = self.plan(item, paged=paged)
            if plan.driver is None:
                continue
            driver = plan.driver
            found = self._counted_upto(driver)
            # Fewest candidates first; among as many, those in EUID order (a page stops
            # early, and probes in EUID order read neighbouring rows), then exact ones.
            # A range of the key index before a scan of the attribute in EUID order.
            rank = (
                found,
                0 if driver.ordered else 1,
                0 if driver.countable else 1,
                0 if driver.exact else 1,
            )
            if best is None or rank < best[0]:
                best = (rank, index, plan)
        if best is None:
            return Plan(None, cond)
        _, chosen, plan = best
        rest = [item for i, item in enumerate(cond.items) if i != chosen]
        if plan.residual is not None:
            rest.append(plan.residual)
        residual = None if not rest else rest[0] if len(rest) == 1 else And(tuple(rest))
        return Plan(plan.driver, residual)

    def _large(self, driver: Driver) -> bool:
        return self._counted_upto(driver) >= COUNT_CAP

    def _counted_upto(self, driver: Driver) -> int:
        if driver.branches:
            return min(COUNT_CAP, sum(self._counted_upto(b) for b in driver.branches))
        if not driver.countable:
            return COUNT_CAP
        key = id(driver)
        if key not in self._counted:
            self._counted[key] = self._count_upto(driver, COUNT_CAP)
        return self._counted[key]

    # Leaves as drivers

    def leaf_driver(self, leaf: Leaf) -> Driver | None:
        """An index range holding every match of ``leaf``, or None (``not_set``, and
        LIST operators that no element row stands for)."""
        if leaf.kind is AttrType.LIST:
            return self._list_driver(leaf)
        if leaf.op is Op.NOT_SET:
            return None
        base = "d.project_id = ? AND d.name = ? AND d.sort_key IS NOT NULL"
        params = [self.project_id, leaf.name]
        pred, more = self._scalar(leaf, "d")
        where = f"{base} AND {pred}" if pred else base
        # The attribute's entries in EUID order: counting its first matches may read all
        # of them, so it never is (it counts as large).
        scan = Driver(
            f"user_values d{self.d.user_index}",
            where,
            params + more,
            ordered=True,
            countable=False,
        )
        if not self._sargable(leaf):
            return scan
        return Driver(
            f"user_values d{self.d.key_index}",
            where,
            params + more,
            ordered=leaf.op is Op.EQ,
            scan=scan,
        )

    @staticmethod
    def _sargable(leaf: Leaf) -> bool:
        """Whether the leaf is a range of ``user_values_by_key``."""
        if leaf.op is Op.STARTS_WITH:
            return True
        return leaf.op in (
            Op.EQ,
            Op.IN,
            Op.GT,
            Op.GTE,
            Op.LT,
            Op.LTE,
            Op.BETWEEN,
            Op.WITHIN_LAST_DAYS,
            Op.MORE_THAN_DAYS_AGO,
        )

    def _list_driver(self, leaf: Leaf) -> Driver | None:
        source = "user_list_items d"
        base = "d.project_id = ? AND d.name = ?"
        params: list[Any] = [self.project_id, leaf.name]
        if leaf.op is Op.HAS:
            return Driver(source, f"{base} AND d.item = ?", [*params, leaf.value], ordered=True)
        if leaf.op in (Op.HAS_ALL, Op.EQ):
            elements = list(dict.fromkeys(leaf.value))
            first = elements[0]
            exact = leaf.op is Op.HAS_ALL and len(elements) == 1
            return Driver(
                source, f"{base} AND d.item = ?", [*params, first], ordered=True, exact=exact
            )
        if leaf.op is Op.HAS_ANY:
            match, more = self.d._in_list("d.item", list(leaf.value))
            return Driver(source, f"{base} AND {match}", params + more, distinct=True)
        return None

    # Conditions as expressions over one user

    def expr(self, cond: Condition | None, outer: str) -> Fragment:
        """A boolean over the user whose EUID is the column ``outer``."""
        if cond is None:
            return "1 = 1", []
        if isinstance(cond, Leaf):
            return self.leaf(cond, outer)
        if isinstance(cond, Not):
            sql, params = self.expr(cond.item, outer)
            return f"NOT ({sql})", params
        parts = [self.expr(item, outer) for item in cond.items]
        joiner = " AND " if isinstance(cond, And) else " OR "
        return "(" + joiner.join(f"({s})" for s, _ in parts) + ")", [
            p for _, ps in parts for p in ps
        ]

    def _alias(self, letter: str) -> str:
        self._aliases += 1
        return f"{letter}{self._aliases}"

    def leaf(self, leaf: Leaf, outer: str) -> Fragment:
        if leaf.kind is AttrType.LIST:
            return self._list_leaf(leaf, outer)
        a = self._alias("v")
        probe = (
            f"SELECT 1 FROM user_values {a}{self.d.user_index} WHERE {a}.project_id = ?"
            f" AND {a}.name = ? AND {a}.euid = {outer} AND {a}.sort_key IS NOT NULL"
        )
        params: list[Any] = [self.project_id, leaf.name]
        probe, params = self._above(probe, params, a)
        if leaf.op is Op.NOT_SET:
            return f"NOT EXISTS ({probe})", params
        pred, more = self._scalar(leaf, a)
        if pred:
            probe += f" AND {pred}"
        return f"EXISTS ({probe})", params + more

    def _above(self, sql: str, params: list[Any], a: str) -> Fragment:
        """A probe of row ``a``, bounded by the page's floor, if any."""
        if self._floor is None:
            return sql, params
        return f"{sql} AND {a}.euid > ?", [*params, self._floor]

    def _scalar(self, leaf: Leaf, a: str) -> Fragment:
        """The test of a STRING, NUMBER, BOOL or DATETIME leaf on row ``a`` (which holds the
        attribute); empty for ``is_set``."""
        op, value, k = leaf.op, leaf.value, f"{a}.sort_key"
        if op is Op.IS_SET:
            return "", []
        if op in (Op.EQ, Op.NE):
            sql, params = self._equal(leaf.kind, [value], a)
            return (sql, params) if op is Op.EQ else (f"NOT ({sql})", params)
        if op in (Op.IN, Op.NOT_IN):
            sql, params = self._equal(leaf.kind, list(value), a)
            return (sql, params) if op is Op.IN else (f"NOT ({sql})", params)
        if op is Op.BETWEEN:
            low, high = value
            return f"{k} >= ? AND {k} <= ?", [_key(leaf.kind, low), _key(leaf.kind, high)]
        if op in _COMPARISONS:
            return f"{k} {_COMPARISONS[op]} ?", [_key(leaf.kind, value)]
        if op is Op.WITHIN_LAST_DAYS:
            start = datetime_key(self.now - value * _DAY)
            return f"{k} >= ? AND {k} <= ?", [start, datetime_key(self.now)]
        if op is Op.MORE_THAN_DAYS_AGO:
            return f"{k} < ?", [datetime_key(self.now - value * _DAY)]
        if op is Op.STARTS_WITH:
            return self._starts_with(value, a)
        if op is Op.CONTAINS:
            return self._on_text(a, lambda t: self.d.position.format(t, "?") + " > 0", [value])
        assert op is Op.ENDS_WITH
        n = len(value)
        return self._on_text(
            a, lambda t: f"length({t}) >= ? AND substr({t}, length({t}) - ? + 1) = ?", [n, n, value]
        )

    def _equal(self, kind: AttrType, values: list[Typed], a: str) -> Fragment:
        keys = [_key(kind, v) for v in values]
        k = f"{a}.sort_key"
        sql, params = (f"{k} = ?", keys) if len(keys) == 1 else self.d._in_list(k, keys)
        if kind is AttrType.STRING and any(len(str(v)) >= STRING_KEY_CHARS for v in values):
            # A key that long may be cut: the value itself decides.
            more_sql, more = (
                (f"{a}.value = ?", values)
                if len(values) == 1
                else self.d._in_list(f"{a}.value", values)
            )
            return f"{sql} AND {more_sql}", params + more
        return sql, params

    def _starts_with(self, prefix: str, a: str) -> Fragment:
        k = f"{a}.sort_key"
        if len(prefix) > STRING_KEY_CHARS:
            return f"{k} = ? AND substr({a}.value, 1, ?) = ?", [
                string_key(prefix),
                len(prefix),
                prefix,
            ]
        upper = _successor(prefix)
        if upper is None:
            return f"{k} >= ?", [prefix]
        return f"{k} >= ? AND {k} < ?", [prefix, upper]

    @staticmethod
    def _on_text(a: str, test: Callable[[str], str], params: list[Any]) -> Fragment:
        """``test`` on the whole string: its key when shorter than a cut key (so an index
        holding the key answers alone), else ``value``."""
        short = test(f"{a}.sort_key")
        full = test(f"{a}.value")
        sql = (
            f"((length({a}.sort_key) < {STRING_KEY_CHARS} AND {short})"
            f" OR (length({a}.sort_key) >= {STRING_KEY_CHARS} AND {full}))"
        )
        return sql, params + params

    def _list_leaf(self, leaf: Leaf, outer: str) -> Fragment:
        op = leaf.op
        if op in (Op.IS_SET, Op.NOT_SET):
            a = self._alias("v")
            probe = (
                f"SELECT 1 FROM user_values {a} WHERE {a}.project_id = ? AND {a}.name = ?"
                f" AND {a}.euid = {outer}"
            )
            probe, params = self._above(probe, [self.project_id, leaf.name], a)
            return (f"EXISTS ({probe})" if op is Op.IS_SET else f"NOT EXISTS ({probe})"), params
        if op is Op.HAS:
            return self._items("EXISTS (SELECT 1", outer, leaf.name, [leaf.value])
        if op is Op.HAS_ANY:
            return self._items("EXISTS (SELECT 1", outer, leaf.name, list(leaf.value))
        if op is Op.HAS_ALL:
            elements = list(dict.fromkeys(leaf.value))
            sql, params = self._items("((SELECT count(*)", outer, leaf.name, elements)
            return f"{sql} = ?)", [*params, len(elements)]
        if op in (Op.EQ, Op.IN):
            lists = [leaf.value] if op is Op.EQ else list(leaf.value)
            parts = [self._list_equal(outer, leaf.name, items) for items in lists]
            return "(" + " OR ".join(s for s, _ in parts) + ")", [p for _, ps in parts for p in ps]
        # ne, not_in: holds the attribute, and is not equal to the value(s).
        is_set = Leaf(leaf.path, leaf.name, leaf.kind, Op.IS_SET)
        equal = Leaf(leaf.path, leaf.name, leaf.kind, Op.EQ if op is Op.NE else Op.IN, leaf.value)
        present, params = self._list_leaf(is_set, outer)
        same, more = self._list_leaf(equal, outer)
        return f"({present} AND NOT {same})", params + more

    def _items(self, head: str, outer: str, name: str, elements: list[str] | None) -> Fragment:
        a = self._alias("i")
        sql = (
            f"{head} FROM user_list_items {a} WHERE {a}.project_id = ? AND {a}.name = ?"
            f" AND {a}.euid = {outer}"
        )
        sql, params = self._above(sql, [self.project_id, name], a)
        if elements is not None:
            if len(elements) == 1:
                sql += f" AND {a}.item = ?"
                params.append(elements[0])
            else:
                match, more = self.d._in_list(f"{a}.item", elements)
                sql += f" AND {match}"
                params += more
        return sql + ")", params

    def _list_equal(self, outer: str, name: str, items: Sequence[str]) -> Fragment:
        """Exactly these elements, in any order: as many rows as elements, all of them."""
        elements = list(dict.fromkeys(items))
        every, params = self._items("((SELECT count(*)", outer, name, None)
        listed, more = self._items("(SELECT count(*)", outer, name, elements)
        n = len(elements)
        return f"{every} = ? AND {listed} = ?)", [*params, n, *more, n]


_COMPARISONS = {Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}
_DAY = timedelta(days=1)


def _key(kind: AttrType, value: Typed) -> str:
    """The sort key a parsed query value is compared as (:mod:`userprops.keys`)."""
    if kind is AttrType.NUMBER:
        return decimal_key(value)  # type: ignore[arg-type]
    if kind is AttrType.DATETIME:
        return datetime_key(value)  # type: ignore[arg-type]
    if kind is AttrType.BOOL:
        return "true" if value else "false"
    assert isinstance(value, str)
    return string_key(value)


_TOP = 0x10FFFF


def _successor(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (code point order),
    or None when there is none (a prefix of U+10FFFF only)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < _TOP:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # no surrogate: the next character is U+E000
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None

"""How a condition is run (userprops.storage.segment_sql): which leaf drives a query, and
the SQL shapes a count and a page take. Answers are checked against the reference in
tests/test_segment_sql.py; here, the choices that make them fast."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from userprops.conditions import Condition, parse
from userprops.config import Limits
from userprops.schema import AttrType
from userprops.storage.segment_sql import COUNT_CAP, Compiler, Driver

TYPES = {"plan": AttrType.STRING, "age": AttrType.NUMBER, "tags": AttrType.LIST}
GOLD = {"property": "plan", "op": "eq", "value": "gold"}
ADULT = {"property": "age", "op": "between", "value": [18, 65]}


class Dialect:
    position: ClassVar[str] = "instr({0}, {1})"
    key_index: ClassVar[str] = " /*key*/"
    user_index: ClassVar[str] = " /*user*/"
    join: ClassVar[str] = "CROSS JOIN"

    def _in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN (?)", [list(values)]


def compiler(counts: dict[str, int]) -> Compiler:
    """Drivers count as ``counts`` says, by the attribute their range reads."""

    def count_upto(driver: Driver, cap: int) -> int:
        return min(cap, counts[driver.params[1]])

    return Compiler(Dialect(), 1, datetime(2026, 1, 1, tzinfo=UTC), count_upto)


def cond(raw: Any) -> Condition:
    return parse(raw, TYPES, Limits(), UTC)


@pytest.mark.parametrize("paged", [False, True])
def test_among_large_drivers_an_equality_in_euid_order_drives(paged: bool) -> None:
    plan = compiler({"plan": 10**6, "age": 10**6}).plan(cond({"and": [ADULT, GOLD]}), paged=paged)
    assert plan.driver is not None and plan.driver.params[1:] == ["plan", "gold"]
    assert plan.driver.ordered and "/*key*/" in plan.driver.source
    assert plan.residual == cond(ADULT)


def test_the_fewest_candidates_drive() -> None:
    plan = compiler({"plan": 10**6, "age": 12}).plan(cond({"and": [GOLD, ADULT]}), paged=True)
    assert plan.driver is not None and plan.driver.params[1] == "age"
    assert plan.residual == cond(GOLD)


def test_a_page_of_a_large_range_reads_the_attribute_in_euid_order() -> None:
    plan = compiler({"age": COUNT_CAP}).plan(cond(ADULT), paged=True)
    assert plan.driver is not None and plan.driver.ordered and "/*user*/" in plan.driver.source
    small = compiler({"age": 3}).plan(cond(ADULT), paged=True)
    assert small.driver is not None and "/*key*/" in small.driver.source


def test_or_unions_its_drivers_and_not_has_none() -> None:
    union = compiler({"plan": 5, "age": 5}).plan(cond({"or": [GOLD, ADULT]}), paged=False)
    assert union.driver is not None and len(union.driver.branches) == 2
    assert union.residual is None
    assert compiler({}).plan(cond({"not": GOLD}), paged=False).driver is None
    partly = compiler({"plan": 5}).plan(
        cond({"or": [GOLD, {"property": "age", "op": "not_set"}]}), paged=False
    )
    assert partly.driver is None


def test_a_count_joins_its_probes_and_a_page_bounds_them() -> None:
    c = compiler({"plan": 10**6, "age": 10**6, "tags": 10**6})
    where = cond({"and": [ADULT, GOLD, {"property": "tags", "op": "has", "value": "x"}]})
    count, _ = c.count(c.plan(where, paged=False))
    assert "CROSS JOIN user_values v" in count and "EXISTS (SELECT 1 FROM user_list_items" in count
    page, params = c.page(c.plan(where, paged=True), 500, 10)
    assert "JOIN" not in page and page.count("euid > ?") == 3
    assert params.count(500) == 3 and params[-1] == 10

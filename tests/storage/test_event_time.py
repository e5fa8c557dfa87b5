"""Event time on every backend (docs/bulk.md, "Event time"): sets with timestamps are
ordered by them, whatever order they arrive in and however the writer groups them."""

from __future__ import annotations

import itertools
from datetime import UTC
from typing import Any

from hypothesis import HealthCheck, example, given, settings, strategies as st

from userprops.auth import Principal
from userprops.config import Limits
from userprops.operations import Op
from userprops.properties import PropertyJob, PropertyRequest, run_property_jobs
from userprops.schema import SchemaMode
from userprops.storage import Storage

LIMITS = Limits()
# Few values, so that a later set often repeats the value already stored.
VALUES = {"plan": st.sampled_from(["gold", "silver"]), "level": st.integers(1, 3)}


@st.composite
def timed_sets(draw: st.DrawFn) -> list[tuple[int, dict[str, Any]]]:
    """Sets of one or both attributes, each at its own timestamp, in time order."""
    times = draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=12, unique=True))
    sets = []
    for at in sorted(times):
        names = draw(st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=2, unique=True))
        sets.append((at, {name: draw(VALUES[name]) for name in names}))
    return sets


_slugs = itertools.count()


def _apply(
    storage: Storage, who: Principal, euid: int, groups: list[list[tuple[int, dict[str, Any]]]]
) -> None:
    """Each group of sets in one transaction, as the writer runs a batch of requests."""
    for group in groups:
        jobs = [
            PropertyJob(who, PropertyRequest(euid, Op.SET, properties, at), LIMITS, {})
            for at, properties in group
        ]
        with storage.transaction() as tx:
            run_property_jobs(tx, jobs)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sets=timed_sets(), data=st.data())
@example(  # the same value again, later: only its time moves, or the older one would win
    sets=[(1, {"plan": "gold"}), (2, {"plan": "silver"}), (3, {"plan": "gold"})],
    data=None,
).via("the shuffle that applies the newest first")
def test_timestamped_sets_in_any_order_leave_what_they_leave_in_time_order(
    storage: Storage, sets: list[tuple[int, dict[str, Any]]], data: st.DataObject | None
) -> None:
    if data is None:
        shuffled = sets[::-1]
        cuts: list[int] = []
    else:
        shuffled = data.draw(st.permutations(sets), label="arrival order")
        cuts = data.draw(st.lists(st.integers(1, len(sets))), label="group ends")
    with storage.transaction() as tx:
        pid = tx.create_project(f"p{next(_slugs)}", SchemaMode.AUTO, "UTC").id
        in_order, out_of_order = tx.create_user(pid), tx.create_user(pid)
    who = Principal(0, "key", pid, SchemaMode.AUTO, UTC)

    _apply(storage, who, in_order, [[s] for s in sets])
    bounds = sorted({0, *cuts, len(sets)})
    _apply(storage, who, out_of_order, [shuffled[a:b] for a, b in itertools.pairwise(bounds)])

    with storage.read() as tx:
        assert tx.get_values(pid, out_of_order) == tx.get_values(pid, in_order)

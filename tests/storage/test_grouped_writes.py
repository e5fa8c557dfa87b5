"""Property requests run as one group (what the writer does with a batch) give exactly what
they give run one after the other, each in its own transaction: the same answer per
request and the same stored values and attribute definitions afterwards. Checked by
hypothesis on every backend, on two fresh databases side by side.

Then what the property test cannot reach: a statement failing inside a group, attributes
another process defines meanwhile, and on PostgreSQL the order of a group's locks and the
values it reads after waiting for them."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from unittest.mock import ANY
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.support.gated import GatedStorage
from userprops.auth import Principal
from userprops.config import Limits
from userprops.errors import ErrorItem, StorageUnavailable
from userprops.operations import Op
from userprops.properties import PropertyJob, PropertyOutcome, PropertyRequest, run_property_jobs
from userprops.schema import INT64_MAX, INT64_MIN, AttrType, SchemaMode
from userprops.storage import Storage, StoredValue, Transaction, open_storage
from userprops.writer import Group

# Small limits, so that too long strings and lists cost a few characters.
LIMITS = Limits(max_string_length=8, max_list_length=3)
MODES = (SchemaMode.AUTO, SchemaMode.STRICT)
ZONES = (UTC, ZoneInfo("Asia/Shanghai"))
USERS_PER_PROJECT = 2
MISSING_EUID = INT64_MAX  # no user has it
NOW = 1_700_000_000_000  # the clock of the property test: writes without a timestamp
NAMES = ("plan", "visits", "tags", "seen")
BAD_NAMES = ("", "Plan", "9lives", "a" * 129)

numbers = st.sampled_from(
    [0, 1, -1, 7, INT64_MAX, INT64_MAX - 1, INT64_MIN, INT64_MIN + 1, INT64_MAX + 1, 10**30]
    + [Decimal(d) for d in ("0.1", "-2.5", "2.0", "1e-28", "1e-29", "9223372036854775807.5")]
) | st.integers(min_value=-3, max_value=3)
texts = st.sampled_from(
    [
        *("gold", "", "x" * 9, "a\x00b", "\ud800", "2024-05-06 07:08:09", "2024-05-06"),
        *("2024-05-06T07:08:09.5+02:00", "2024-13-45 00:00:00"),
    ]
) | st.text(alphabet="xyz", max_size=2)
words = st.sampled_from(["x", "y", "z"])
elements = st.sampled_from(["x", "y", "z", "", "x" * 9, 1, None])
stamps = st.sampled_from(["2024-05-06 07:08:09", "2024-05-06T07:08:09.5+02:00", 1715000000000])
by_name = {  # each name's values, mostly of one type: so that requests on it succeed
    "visits": numbers,
    "tags": words | st.lists(words, min_size=1),
    "plan": texts,
    "seen": st.booleans() | stamps,
}
by_op = {  # the values each operation takes, mostly
    Op.SET: texts | numbers | st.booleans() | st.lists(words, min_size=1),
    Op.INCREASE: numbers,
    Op.ADD: words | st.lists(words, min_size=1),
    Op.REMOVE: words | st.lists(words, min_size=1),
    Op.DELETE: st.none(),
}
anything = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    texts,
    st.lists(elements, max_size=4),
    st.sampled_from([{}, {"k": 1}]),
)


@dataclass(frozen=True)
class Step:
    """One request: the project it is made in (an index into MODES), the user it names
    (``own``: one of that project's, ``other``: one of another project's, ``missing``: an
    EUID nobody has; ``index`` picks which), whether the engine's cache knows the
    project's pre-defined attributes, the operation, the properties and the timestamp
    (around :data:`NOW`, the clock of the test)."""

    project: int
    user: str
    index: int
    knows: bool
    op: Op
    properties: dict[str, Any]
    timestamp: int | None = None


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, picked in proportion to its weight."""
    return st.sampled_from([s for w, s in choices for _ in range(w)]).flatmap(lambda s: s)


# Requests meet on a few users and names often, or there is little to get wrong.
targets = st.sampled_from(
    [(0, "own", 0)] * 9
    + [(0, "own", 1)] * 2
    + [(1, "own", 0)] * 3
    + [(1, "own", 1), (0, "other", 0), (1, "other", 1), (0, "missing", 0)]
)
names = st.sampled_from(["visits"] * 5 + ["tags"] * 5 + ["plan", "seen"] * 2 + list(BAD_NAMES))
ops = st.sampled_from([Op.SET, Op.INCREASE, Op.ADD] * 2 + [Op.REMOVE, Op.DELETE])


@st.composite
def steps(draw: st.DrawFn) -> Step:
    project, user, index = draw(targets)
    op = draw(ops)
    properties = {
        name: draw(weighted((4, by_name.get(name, anything)), (1, by_op[op]), (1, anything)))
        for name in draw(st.lists(names, min_size=1, max_size=2))
    }
    timestamp = draw(st.sampled_from([None, None, NOW - 1, NOW, NOW + 1]))
    return Step(project, user, index, draw(st.booleans()), op, properties, timestamp)


NATURAL = {"visits": AttrType.NUMBER, "tags": AttrType.LIST, "plan": AttrType.STRING}
predefined = st.lists(  # per project: some names defined, mostly with the natural type
    st.dictionaries(
        st.sampled_from(NAMES),
        st.sampled_from([AttrType.BOOL, AttrType.DATETIME]) | st.sampled_from(list(AttrType)),
        max_size=len(NAMES),
    ).map(lambda defined: {n: NATURAL.get(n, kind) for n, kind in defined.items()})
    | st.dictionaries(st.sampled_from(NAMES), st.sampled_from(list(AttrType)), max_size=2),
    min_size=len(MODES),
    max_size=len(MODES),
)


@pytest.fixture
def twin(storage_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A second empty database on the backend of ``storage``."""
    if storage_url.startswith("sqlite"):
        url, release = f"sqlite:///{tmp_path / 'twin.db'}", None
    else:
        databases = request.getfixturevalue("pg_databases")
        url, release = databases.create(), databases.release
    store = open_storage(url)
    store.migrate()
    yield store
    store.close()
    if release is not None:
        release(url)


_slugs = itertools.count()


@dataclass
class World:
    """The projects and users of one example in one database, and their jobs."""

    storage: Storage
    principals: list[Principal]
    euids: list[list[int]]
    known: list[dict[str, AttrType]]

    @classmethod
    def make(cls, storage: Storage, defined: list[dict[str, AttrType]], n: int) -> World:
        principals, euids = [], []
        with storage.transaction() as tx:
            for i, (mode, zone) in enumerate(zip(MODES, ZONES, strict=True)):
                project = tx.create_project(f"p{n}_{i}", mode, str(zone))
                principals.append(Principal(0, "key", project.id, mode, zone))
                euids.append([tx.create_user(project.id) for _ in range(USERS_PER_PROJECT)])
                for name, kind in defined[i].items():
                    tx.define_attribute(project.id, name, kind)
        return cls(storage, principals, euids, defined)

    def job(self, step: Step) -> PropertyJob:
        project = step.project if step.user == "own" else (step.project + 1) % len(MODES)
        euid = MISSING_EUID if step.user == "missing" else self.euids[project][step.index]
        request = PropertyRequest(euid, step.op, dict(step.properties), step.timestamp)
        known = dict(self.known[step.project]) if step.knows else {}
        return PropertyJob(self.principals[step.project], request, LIMITS, known)

    def one_by_one(self, jobs: list[Step]) -> list[Any]:
        answers = []
        for step in jobs:
            try:
                with self.storage.transaction() as tx:
                    answers.append(answer(self.job(step)(tx)))
            except Exception as exc:
                answers.append(answer(exc))
        return answers

    def as_one_group(self, jobs: list[Step]) -> list[Any]:
        with self.storage.transaction() as tx:
            return [answer(r) for r in run_property_jobs(tx, [self.job(s) for s in jobs])]

    def state(self) -> tuple[Any, ...]:
        """Every stored value of the example's users and every attribute definition of
        its projects, by index (ids may differ between the databases)."""
        with self.storage.read() as tx:
            values = [
                tx.get_values(p.project_id, euid)
                for p, euids in zip(self.principals, self.euids, strict=True)
                for euid in euids
            ]
            attributes = [
                [(name, kind) for name, kind, _ in tx.list_attributes(p.project_id)]
                for p in self.principals
            ]
            return values, attributes, tx.count_rows()["user_values"]


def answer(result: PropertyOutcome | Exception) -> Any:
    """What a request is answered: its rejections and learned types, or its exception."""
    if isinstance(result, PropertyOutcome):
        return result.errors, result.learned
    return type(result), str(result)


def on_the_first_user(op: Op, properties: dict[str, Any]) -> Step:
    return Step(0, "own", 0, False, op, properties)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    defined=predefined,
    before=st.lists(steps(), max_size=6),
    batch=st.lists(steps(), min_size=3, max_size=16),
)
@example(  # each request reads what the one before it wrote
    defined=[{}, {}],
    before=[],
    batch=[
        on_the_first_user(Op.SET, {"visits": 1, "tags": ["x"]}),
        on_the_first_user(Op.INCREASE, {"visits": 2}),
        on_the_first_user(Op.REMOVE, {"tags": "x"}),  # an emptied list is deleted
        on_the_first_user(Op.ADD, {"tags": ["y", "x"]}),  # and written again
        on_the_first_user(Op.INCREASE, {"visits": Decimal("0.5")}),
    ],
)
@example(  # a value deleted in the group is absent for the requests after it
    defined=[{}, {}],
    before=[on_the_first_user(Op.SET, {"visits": 5, "tags": ["x", "y"]})],
    batch=[
        on_the_first_user(Op.DELETE, {"visits": None, "tags": None}),
        on_the_first_user(Op.INCREASE, {"visits": 1}),
        on_the_first_user(Op.ADD, {"tags": "z"}),
    ],
)
@example(  # an attribute defined in the group binds the requests after it, per project
    defined=[{}, {"plan": AttrType.LIST}],
    before=[],
    batch=[
        on_the_first_user(Op.SET, {"plan": "gold"}),
        Step(0, "own", 1, False, Op.SET, {"plan": ["x"]}),
        Step(1, "own", 0, False, Op.SET, {"plan": "gold", "visits": 1}),
        Step(1, "other", 0, True, Op.ADD, {"plan": "x"}),
        Step(1, "own", 1, True, Op.ADD, {"plan": "x"}),
    ],
)
@example(  # a set older than the value is stale, also when the value was set in the group
    defined=[{}, {}],
    before=[Step(0, "own", 0, False, Op.SET, {"plan": "a"}, NOW)],
    batch=[
        Step(0, "own", 0, False, Op.SET, {"plan": "b", "visits": 1}, NOW - 1),
        Step(0, "own", 0, False, Op.SET, {"visits": 2}, NOW + 1),
        Step(0, "own", 0, False, Op.DELETE, {"visits": None}, NOW),
        Step(0, "own", 0, False, Op.INCREASE, {"visits": 1}, NOW - 1),  # always applies
        Step(0, "own", 0, False, Op.SET, {"plan": "a"}, NOW + 1),  # the same value, later
    ],
)
def test_a_group_of_property_requests_does_what_they_do_one_after_the_other(
    storage: Storage,
    twin: Storage,
    monkeypatch: pytest.MonkeyPatch,
    defined: list[dict[str, AttrType]],
    before: list[Step],
    batch: list[Step],
) -> None:
    monkeypatch.setattr("userprops.properties.now_ms", lambda: NOW)  # the values' times
    n = next(_slugs)
    grouped, alone = World.make(storage, defined, n), World.make(twin, defined, n)
    assert grouped.one_by_one(before) == alone.one_by_one(before)  # values already stored

    assert grouped.as_one_group(batch) == alone.one_by_one(batch)
    assert grouped.state() == alone.state()


# A statement that fails inside a group is not one request's answer: the backend's
# run_batch must see it, to run the batch again (deadlock), fail it (the database failed)
# or fail the group alone, and never commit what a failed statement left behind.


class Proxy:
    """A transaction, but for the methods a subclass replaces."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


class Refusing(Proxy):
    """A transaction whose attribute definitions run a statement the database refuses
    (a user of a project that does not exist)."""

    def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
        self._tx.create_user(-1)
        raise AssertionError("the database accepted a user of no project")


def run_on(proxy: Callable[..., Any], *jobs: PropertyJob) -> Group:
    """Property jobs grouped as the writer groups them, run on ``proxy(tx)``."""
    return Group(
        list(jobs), lambda tx, group: run_property_jobs(proxy(tx), cast("list[PropertyJob]", group))
    )


def _defining(storage: Storage) -> tuple[int, int, PropertyJob]:
    """A project with two users, and a job of one of them that defines an attribute."""
    with storage.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        first, second = tx.create_user(pid), tx.create_user(pid)
    who = Principal(0, "key", pid, SchemaMode.AUTO, UTC)
    return pid, first, PropertyJob(who, PropertyRequest(second, Op.SET, {"level": 1}), LIMITS, {})


def test_a_statement_that_fails_in_a_group_fails_the_group_and_no_job_before_it(
    storage: Storage,
) -> None:
    pid, first, defining = _defining(storage)
    gold = StoredValue(AttrType.STRING, "gold")

    def set_plan(tx: Transaction) -> str:
        tx.put_values(pid, first, {"plan": gold})
        return "stored"

    plan, failed = storage.run_batch([set_plan, run_on(Refusing, defining)])

    assert plan == "stored"
    assert isinstance(failed, Exception)  # each of its jobs is answered with it
    with storage.read() as tx:  # what was answered "stored" was committed
        assert tx.get_values(pid, first) == {"plan": gold}
        assert tx.list_attributes(pid) == []


def test_a_failure_of_the_database_inside_a_group_fails_its_batch(storage: Storage) -> None:
    pid, _, defining = _defining(storage)
    failing = GatedStorage(storage)._disk_fails

    class Broken(Proxy):
        def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
            failing(self._tx)
            raise AssertionError("unreachable")

    with pytest.raises(StorageUnavailable):
        storage.run_batch([run_on(Broken, defining)])
    with storage.read() as tx:
        assert tx.list_attributes(pid) == []


class Crossing(Proxy):
    """Defines attributes as asked; after its first definition, waits at its gate (once,
    not in a run again), so that two batches defining in opposite orders cross."""

    def __init__(self, tx: Transaction, gates: list[threading.Barrier]) -> None:
        super().__init__(tx)
        self._gates = gates

    def define_attribute(self, project_id: int, name: str, kind: AttrType) -> AttrType:
        defined = self._tx.define_attribute(project_id, name, kind)
        if self._gates:
            self._gates.pop().wait(timeout=10)
        return defined


def test_groups_that_deadlock_defining_attributes_are_retried_and_both_apply(
    two: tuple[Storage, Storage],
) -> None:
    first, second = two
    pid, a, defining = _defining(first)
    who, b = defining.who, defining.request.euid
    crossed = threading.Barrier(2)
    answers: list[Any] = []

    def batch(storage: Storage, euid: int, names: str) -> None:
        request = PropertyRequest(euid, Op.SET, dict.fromkeys(names, 1))
        gates = [crossed]
        group = run_on(lambda tx: Crossing(tx, gates), PropertyJob(who, request, LIMITS, {}))
        (answered,) = storage.run_batch([group])
        assert isinstance(answered, list)
        answers.extend(answered)

    threads = [
        threading.Thread(target=batch, args=(first, a, "xy")),
        threading.Thread(target=batch, args=(second, b, "yx")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # One was the deadlock victim: its batch was rolled back and run again, not answered
    # with the deadlock.
    assert [type(answer) for answer in answers] == [PropertyOutcome, PropertyOutcome]
    one = StoredValue(AttrType.NUMBER, "1", ANY)  # at the time of its group
    with first.read() as tx:
        assert tx.get_values(pid, a) == {"x": one, "y": one}
        assert tx.get_values(pid, b) == {"x": one, "y": one}


# PostgreSQL, several processes: a group's locks are taken in one order, and the values it
# reads are those committed by whoever held the locks before it.


def locking(
    storage: Storage, wanted: dict[tuple[int, int], list[str]], probe: psycopg.Connection[Any]
) -> tuple[threading.Thread, list[object]]:
    """Start a transaction of ``storage`` that runs ``lock_values(wanted)`` (what it reads
    goes in the list) in a thread; return once it waits for a row lock."""
    read: list[object] = []

    def lock() -> None:
        with storage.transaction() as tx:
            read.append(tx.lock_values(wanted))

    waiter = threading.Thread(target=lock)
    waiter.start()
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while waiter.is_alive() and not probe.execute(waiting).fetchone()[0]:  # type: ignore[index]
        waiter.join(0.01)
    return waiter, read


def test_users_of_several_projects_are_locked_in_one_order_whatever_the_batch_order(
    two: tuple[Storage, Storage],
    pg_url: str,
) -> None:
    first, second = two
    with first.transaction() as tx:
        p1, p2 = (tx.create_project(slug, SchemaMode.AUTO, "UTC").id for slug in ("p1", "p2"))
        u1, u2 = tx.create_user(p1), tx.create_user(p2)
    with first.transaction() as holder, psycopg.connect(pg_url, autocommit=True) as probe:
        holder.lock_values({(p1, u1): []})
        # A batch naming p2's user first waits for u1 (p1 before p2) holding nothing: a
        # batch that has u2 and wants u1 would wait for it, not deadlock with it.
        waiter, locked = locking(second, {(p2, u2): [], (p1, u1): []}, probe)
        with probe.transaction():
            probe.execute("SELECT 1 FROM users WHERE euid = %s FOR UPDATE NOWAIT", (u2,))
    waiter.join()
    assert locked == [{(p1, u1): {}, (p2, u2): {}}]


def test_values_read_after_waiting_for_a_lock_are_those_its_holder_committed(
    two: tuple[Storage, Storage],
    pg_url: str,
) -> None:
    first, second = two
    with first.transaction() as tx:
        pid = tx.create_project("p", SchemaMode.AUTO, "UTC").id
        euid = tx.create_user(pid)
        tx.put_values(pid, euid, {"n": StoredValue(AttrType.NUMBER, "1")})
    with first.transaction() as holder, psycopg.connect(pg_url, autocommit=True) as probe:
        holder.lock_values({(pid, euid): []})
        waiter, read = locking(second, {(pid, euid): ["n"]}, probe)
        holder.put_values(pid, euid, {"n": StoredValue(AttrType.NUMBER, "2")})
    waiter.join()
    assert read == [{(pid, euid): {"n": StoredValue(AttrType.NUMBER, "2")}}]


class Stale(Proxy):
    """A transaction whose reads of attribute types are older than another process's
    definitions (committed after the group read them)."""

    def attribute_types(self, project_id: int, names: Any) -> dict[str, AttrType]:
        return {}


def test_an_attribute_defined_meanwhile_binds_the_requests_after_the_one_that_found_it(
    storage: Storage,
) -> None:
    pid, first, job = _defining(storage)
    with storage.transaction() as tx:  # by another process, after the group read types
        tx.define_attribute(pid, "level", AttrType.STRING)
    stamp = "2024-05-06 07:08:09"
    later = PropertyJob(job.who, PropertyRequest(first, Op.SET, {"level": stamp}), Limits(), {})

    (answers,) = storage.run_batch([run_on(Stale, job, later)])
    assert isinstance(answers, list)

    assert [a.errors for a in answers] == [
        [ErrorItem(property="level", code=55102, message="level was defined as STRING meanwhile")],
        [],  # a STRING, as it would be in a transaction of its own: not a DATETIME
    ]
    with storage.read() as tx:
        assert tx.get_values(pid, first) == {"level": StoredValue(AttrType.STRING, stamp, ANY)}

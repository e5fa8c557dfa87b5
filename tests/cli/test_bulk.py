"""``userprops import`` and ``userprops export`` (userprops.bulk), on every backend."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from userprops import admin, bulk
from userprops.cli import main
from userprops.errors import InvalidParameters, StorageUnavailable
from userprops.schema import AttrType
from userprops.storage import Storage, Transaction


@pytest.fixture
def shop(storage: Storage) -> str:
    admin.create_project(storage, "shop")
    return "shop"


def write(path: Path, *lines: Any) -> Path:
    text = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path.write_text(text)
    return path


def cli(storage: Storage, *args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--database", storage.url])


def export(storage: Storage, project: str = "shop") -> list[dict[str, Any]]:
    out = BytesIO()
    bulk.export_project(storage, project, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def users(storage: Storage, project: str = "shop") -> dict[str, dict[str, Any]]:
    """Each exported user's properties, by its user_id."""
    return {u["identities"]["user_id"][0]: u["properties"] for u in export(storage, project)}


def test_ndjson_lines_are_applied_as_the_api_would(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "in.ndjson",
        {"identities": {"user_id": "alice"}, "properties": {"plan": "gold", "age": 30}},
        {"identities": {"user_id": "alice"}, "type": "increase", "properties": {"age": 1}},
        "",  # blank lines are skipped
        "not json",
        ["an", "array"],
        {"identities": {"user_id": "bob"}, "type": "increase", "properties": {"n": 1, "plan": 2}},
        {"euid": 999, "properties": {"plan": "x"}},
        {"identities": {"email": "x"}, "properties": {"plan": "x"}},
        {"identities": {"user_id": "carol"}},  # a user with no attributes yet
    )
    result = cli(storage, "import", str(path), "--project", shop, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    assert (summary["lines"], summary["applied"], summary["partial"], summary["rejected"]) == (
        9,
        3,
        1,
        4,
    )
    assert summary["values"] == 4
    report = [
        json.loads(line) for line in (tmp_path / "in.ndjson.errors.ndjson").read_text().splitlines()
    ]
    assert [(r["line"], r["code"]) for r in report] == [
        (4, 55004),
        (5, 55004),
        (6, 0),
        (7, 40404),
        (8, 55004),
    ]
    assert report[2]["errors"][0]["property"] == "plan"
    assert users(storage) == {"alice": {"age": 31, "plan": "gold"}, "bob": {"n": 1}, "carol": {}}


def test_a_backfill_of_timestamped_lines_keeps_the_newest_fact(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    alice = {"user_id": "alice"}
    path = write(
        tmp_path / "in.ndjson",
        {"identities": alice, "properties": {"plan": "gold"}, "timestamp": 2000},
        {"identities": alice, "properties": {"plan": "trial", "age": 30}, "timestamp": 1000},
        {"identities": alice, "properties": {"plan": "x"}, "timestamp": "yesterday"},
        {"identities": alice, "type": "increase", "properties": {"age": 1}, "timestamp": 1},
    )
    summary = bulk.import_file(storage, shop, path)
    assert (summary.applied, summary.partial, summary.rejected) == (2, 1, 1)
    report = [
        json.loads(line) for line in (tmp_path / "in.ndjson.errors.ndjson").read_text().splitlines()
    ]
    assert [(r["line"], r["code"]) for r in report] == [(2, 0), (3, 55004)]
    assert report[0]["errors"][0]["code"] == 55106
    assert users(storage) == {"alice": {"age": 31, "plan": "gold"}}


def test_history_records_imported_changes_as_from_the_cli(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "in.ndjson", {"identities": {"user_id": "a"}, "properties": {"p": 1}})
    bulk.import_file(storage, shop, path)
    with storage.read() as tx:
        project = tx.get_project(shop)
        assert project is not None
        [change] = tx.list_changes(project.id, 0, 10)
    assert (change.property, change.new, change.source) == ("p", "1", "cli")


def test_csv_rows_are_typed_by_definition_or_inference(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    admin.define_attribute(storage, shop, "zip", AttrType.STRING)
    admin.define_attribute(storage, shop, "tags", AttrType.LIST)
    path = tmp_path / "in.csv"
    path.write_text(
        "user_id,zip,age,vip,seen,score,tags,note\n"
        'alice,01234,41,true,2024-01-01 10:00:00,1.50,"[""a"",""b""]",hello\n'
        "bob,,x1,false,,,solo,\n"
        'carol,"multi\nline",7,,,,,\n'
    )
    summary = bulk.import_file(storage, shop, path)
    # bob's age "x1" reads as STRING, but alice's row defined age as NUMBER just before
    assert (summary.applied, summary.partial, summary.rejected) == (2, 1, 0)
    assert users(storage) == {
        "alice": {
            "age": 41,
            "note": "hello",
            "score": 1.5,
            "seen": "2024-01-01T10:00:00+00:00",
            "tags": ["a", "b"],
            "vip": True,
            "zip": "01234",
        },
        "bob": {"tags": ["solo"], "vip": False},
        "carol": {"age": 7, "zip": "multi\nline"},
    }


def test_a_bad_csv_cell_is_reported_for_its_line_and_the_rest_applied(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    path = tmp_path / "in.csv"
    path.write_text("user_id,age,plan\nalice,30,gold\nbob,thirty,free\n,1,x\ncarol,1\n")
    summary = bulk.import_file(storage, shop, path, errors_path=tmp_path / "errors")
    report = [json.loads(line) for line in (tmp_path / "errors").read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in report] == [(3, 0), (4, 55004), (5, 55004)]
    assert report[0]["errors"] == [
        {"property": "age", "code": 55102, "message": "expected NUMBER, got string"}
    ]
    assert (summary.applied, summary.partial, summary.rejected) == (1, 1, 2)
    assert users(storage) == {"alice": {"age": 30, "plan": "gold"}, "bob": {"plan": "free"}}


@pytest.mark.parametrize("header", ["email,plan", "plan,user_id", ",plan", ""])
def test_a_csv_without_a_user_column_first_is_refused_whole(
    storage: Storage, shop: str, tmp_path: Path, header: str
) -> None:
    path = tmp_path / "in.csv"
    path.write_text(f"{header}\nalice,gold\n" if header else "")
    result = cli(storage, "import", str(path), "--project", shop)
    assert result.exit_code == 1
    assert "first CSV header" in result.output or "empty" in result.output
    assert export(storage) == []


def test_csv_by_euid(storage: Storage, shop: str, tmp_path: Path) -> None:
    with storage.transaction() as tx:
        project = tx.get_project(shop)
        assert project is not None
        euid = tx.create_user(project.id)
    path = tmp_path / "in.csv"
    path.write_text(f"euid,plan\n{euid},gold\n999,free\nabc,x\n")
    summary = bulk.import_file(storage, shop, path)
    assert (summary.applied, summary.rejected) == (1, 2)
    assert export(storage) == [{"euid": euid, "identities": {}, "properties": {"plan": "gold"}}]


class FailsAtChunk:
    """The real storage, except that the ``n``-th batch fails as the database would."""

    def __init__(self, storage: Storage, n: int) -> None:
        self._storage = storage
        self._n = n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def run_batch(self, jobs: Sequence[Callable[[Transaction], Any]]) -> list[Any]:
        self._n -= 1
        if self._n == 0:
            raise StorageUnavailable("the database went away")
        return self._storage.run_batch(jobs)


def increases(n: int) -> list[dict[str, Any]]:
    return [
        {"identities": {"user_id": f"u{i % 7}"}, "type": "increase", "properties": {"n": 1}}
        for i in range(n)
    ]


def test_an_interrupted_import_resumes_without_applying_a_line_twice(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "in.ndjson", *increases(100))
    with pytest.raises(StorageUnavailable):
        bulk.import_file(FailsAtChunk(storage, 4), shop, path, chunk=10)  # type: ignore[arg-type]
    assert sum(u["n"] for u in users(storage).values()) == 30  # three chunks committed
    summary = bulk.import_file(storage, shop, path, chunk=10)
    assert (summary.skipped, summary.lines, summary.applied) == (30, 70, 70)
    assert sum(u["n"] for u in users(storage).values()) == 100
    write(tmp_path / "in.ndjson", *increases(100), *increases(5))  # lines appended since
    summary = bulk.import_file(storage, shop, path, chunk=10)
    assert (summary.skipped, summary.applied) == (100, 5)
    assert sum(u["n"] for u in users(storage).values()) == 105
    again = bulk.import_file(storage, shop, path, chunk=10)  # nothing left to do
    assert (again.skipped, again.lines) == (105, 0)


def test_a_file_changed_under_its_checkpoint_is_refused_unless_restarted(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "in.ndjson", *increases(20))
    bulk.import_file(storage, shop, path)
    lines = increases(20)
    lines[3]["properties"]["n"] = 2
    write(path, *lines)
    with pytest.raises(InvalidParameters, match="changed since"):
        bulk.import_file(storage, shop, path)
    write(path, *increases(10))
    with pytest.raises(InvalidParameters, match="shorter"):
        bulk.import_file(storage, shop, path)
    summary = bulk.import_file(storage, shop, path, restart=True)
    assert summary.applied == 10
    assert sum(u["n"] for u in users(storage).values()) == 30


def test_export_round_trips_through_import(storage: Storage, shop: str, tmp_path: Path) -> None:
    admin.create_project(storage, "tokyo", timezone="Asia/Tokyo")
    path = write(
        tmp_path / "in.ndjson",
        {
            "identities": {"user_id": "a", "registration_id": ["d1", "d2"]},
            "properties": {
                "plan": "gold",
                "n": 0.1,
                "seen": "2024-01-01 10:00:00",
                "vip": False,
                "tags": ["x", "y"],
            },
        },
        {"identities": {"anonymous_id": "anon"}, "properties": {"n": -3}},
        '{"identities": {"user_id": "b"}, "properties": {"big": 1234567890.123456789012345678}}',
    )
    bulk.import_file(storage, "tokyo", path)
    exported = tmp_path / "out.ndjson"
    assert cli(storage, "export", "--project", "tokyo", "--output", str(exported)).exit_code == 0
    admin.create_project(storage, "copy", timezone="Asia/Tokyo")
    summary = bulk.import_file(storage, "copy", exported)
    assert (summary.applied, summary.rejected) == (3, 0)

    def shape(project: str) -> list[tuple[Any, Any]]:
        return sorted(
            (json.dumps(u["identities"]), json.dumps(u["properties"]))
            for u in export(storage, project)
        )

    assert shape("copy") == shape("tokyo")
    original = export(storage, "tokyo")
    assert original[0]["properties"]["seen"] == "2024-01-01T10:00:00+09:00"
    assert b'"big":1234567890.123456789012345678}' in exported.read_bytes()  # exact


def test_export_memory_stays_flat_as_users_grow(
    storage: Storage, shop: str, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "in.ndjson",
        *(
            {"identities": {"user_id": f"u{i}"}, "properties": {"a": i, "b": "x" * 20}}
            for i in range(6000)
        ),
    )
    bulk.import_file(storage, shop, path)

    def peak(page: int) -> int:
        sink = BytesIO()
        tracemalloc.start()
        try:
            bulk.export_project(storage, shop, _Discard(sink), page=page)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # The same page size over 6,000 users holds no more than a page: a page of 100 costs
    # well under what one of 3,000 does, whatever the total.
    assert peak(100) * 5 < peak(3000)


class _Discard(BytesIO):
    """A file that forgets what it is given, so only the export's own memory counts."""

    def __init__(self, inner: BytesIO) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: Any) -> int:
        self.written += len(data)
        return len(data)

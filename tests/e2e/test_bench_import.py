"""The benchmark's import figure (bench/bulkimport.py) on a small file: its files import
completely, in both formats."""

from __future__ import annotations

from pathlib import Path

from bench import bulkimport


def test_the_import_benchmark_imports_every_value(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    result = bulkimport.measure(url, tmp_path, 50)
    assert result["values"] == 50 * bulkimport.ATTRIBUTES
    for fmt in ("ndjson", "csv"):
        assert (result[fmt]["applied"], result[fmt]["rejected"]) == (50, 0)
        assert result[fmt]["values_per_second"] > 0

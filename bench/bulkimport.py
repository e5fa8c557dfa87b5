"""The import figure: ``userprops import`` of a generated file of N users x 20 attributes
into a new project, timed end to end (CLI process start included), NDJSON and CSV."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.setup import cli

ATTRIBUTES = 20


def write_files(folder: Path, users: int) -> dict[str, Path]:
    """An NDJSON and a CSV file of ``users`` users, each with 20 values: 8 STRING, 8
    NUMBER, a BOOL, a DATETIME, a decimal and a LIST (a STRING in the CSV)."""
    rng = random.Random(1)  # noqa: S311 (test data, not secrets)
    ndjson, csv = folder / "import.ndjson", folder / "import.csv"
    names = [f"s{j}" for j in range(8)] + [f"n{j}" for j in range(8)] + ["b", "d", "f", "l"]
    with ndjson.open("w") as nd, csv.open("w") as cs:
        cs.write("user_id," + ",".join(names) + "\n")
        for i in range(users):
            row: list[Any] = [f"v{rng.randrange(1000)}" for _ in range(8)]
            row += [rng.randrange(10**6) for _ in range(8)]
            row += [rng.random() < 0.5, "2024-01-02 03:04:05", round(rng.random() * 100, 2)]
            props = dict(zip(names, [*row, ["a", "b"]], strict=True))
            nd.write(json.dumps({"identities": {"user_id": f"u{i}"}, "properties": props}) + "\n")
            cells = [str(v).lower() if isinstance(v, bool) else str(v) for v in row]
            cs.write(f"u{i}," + ",".join([*cells, "x"]) + "\n")
    return {"ndjson": ndjson, "csv": csv}


def measure(url: str, folder: Path, users: int) -> dict[str, Any]:
    """Import each file into a project of its own on ``url``; values per second."""
    files = write_files(folder, users)
    results: dict[str, Any] = {"users": users, "values": users * ATTRIBUTES}
    for fmt, path in files.items():
        slug = f"imp{fmt}{int(time.time() * 1000) % 10**9}"
        cli("project", "create", slug, "--database", url)
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "userprops",
                "import",
                str(path),
                "--project",
                slug,
                "--database",
                url,
                "--json",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds = time.monotonic() - started
        summary = json.loads(done.stdout)
        results[fmt] = {
            "seconds": round(seconds, 2),
            "values_per_second": round(summary["values"] / seconds),
            "applied": summary["applied"],
            "rejected": summary["rejected"] + summary["partial"],
        }
    return results

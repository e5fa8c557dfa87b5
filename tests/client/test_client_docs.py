"""The client's docs say what it does: the README example runs as written, and
docs/client.md lists exactly the client's error classes and methods."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.serverproc import Server
from userprops_client import ERROR_CLASSES, AsyncClient, Client

ROOT = Path(__file__).parents[2]


def test_readme_client_example_runs_against_a_fresh_server(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python client", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    expected = example.rsplit("# ", 1)[1].strip()
    server = Server(tmp_path)
    try:
        key, secret = server.credentials()
        code = (
            example.replace("<api_key>", key)
            .replace("<api_secret>", secret)
            .replace("http://127.0.0.1:8000", server.url)
        )
        ran = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert ran.stdout.strip() == expected
    finally:
        server.stop_cleanly()


def test_client_page_lists_every_error_class_with_its_code() -> None:
    page = (ROOT / "docs" / "client.md").read_text()
    documented = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", page, re.MULTILINE))
    assert {name: int(code) for name, code in documented.items()} == {
        cls.__name__: code for code, cls in ERROR_CLASSES.items()
    }


def test_client_page_lists_every_public_method_of_both_clients() -> None:
    page = (ROOT / "docs" / "client.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)\(", page, re.MULTILINE))
    for cls in (Client, AsyncClient):
        public = {name for name in vars(cls) if not name.startswith("_")}
        assert public - {"close", "aclose"} == documented

"""The README's quick start works as written: its curl lines, against a real server."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from tests.support.serverproc import Server

README = Path(__file__).parents[2] / "README.md"


def quick_start_commands() -> list[tuple[list[str], str]]:
    """The curl commands of the README with the answer shown under each."""
    text = README.read_text()
    block = text.split("AUTH=<api_key>:<api_secret>", 1)[1].split("```", 1)[0]
    block = block.replace("\\\n", " ")
    pairs = []
    lines = [line.strip() for line in block.strip().splitlines()]
    for command, answer in zip(lines[::2], lines[1::2], strict=True):
        assert command.startswith("curl") and answer.startswith("# ")
        pairs.append((shlex.split(command), answer[2:]))
    return pairs


def test_readme_curl_example_works_against_a_fresh_server(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        key, secret = server.credentials()
        for argv, expected in quick_start_commands():
            argv = [
                a.replace("$AUTH", f"{key}:{secret}").replace(
                    "localhost:8000", f"127.0.0.1:{server.port}"
                )
                for a in argv
            ]
            got = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30)
            assert json.loads(got.stdout) == json.loads(expected)
    finally:
        server.stop_cleanly()

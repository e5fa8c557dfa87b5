"""userprops-client installs alone: a fresh virtual environment, the package from the
checkout, and nothing but httpx (and what httpx needs) comes with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DISTRIBUTION = Path(__file__).parents[2] / "clients" / "python"
HTTPX_AND_ITS_OWN = {"httpx", "httpcore", "h11", "anyio", "idna", "certifi", "sniffio"}
HTTPX_AND_ITS_OWN |= {"typing-extensions", "typing_extensions", "exceptiongroup"}
PROBE = """
import importlib.metadata as md, json, userprops_client
dist = md.distribution("userprops-client")
print(json.dumps({
    "version": userprops_client.__version__,
    "requires": dist.requires,
    "installed": sorted(d.metadata["Name"].lower() for d in md.distributions()),
    "typed": dist.locate_file("userprops_client/py.typed").exists(),
}))
"""


def test_the_client_installs_alone_in_a_fresh_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", DISTRIBUTION],
        check=True,
        timeout=300,
    )
    out = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout)
    assert found["requires"] == ["httpx<1,>=0.27"]
    assert found["typed"]
    extra = set(found["installed"]) - HTTPX_AND_ITS_OWN - {"pip", "setuptools", "userprops-client"}
    assert extra == set()
    version = (DISTRIBUTION / "src" / "userprops_client" / "_version.py").read_text()
    assert f'__version__ = "{found["version"]}"' in version

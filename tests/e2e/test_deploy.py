"""The deployment examples of deploy/ (docs/operations.md) are valid for their tools: the
systemd units pass `systemd-analyze verify`, and nginx, started with the example, serves
the API through it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.liveserver import live_server
from tests.support.serverproc import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
USERPROPS = str(Path(sys.executable).with_name("userprops"))


@pytest.mark.parametrize(
    ("unit", "name"),
    [("userprops.service", "userprops.service"), ("userprops@.service", "userprops@8001.service")],
)
def test_the_systemd_units_verify(tmp_path: Path, unit: str, name: str) -> None:
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "/opt/userprops/.venv/bin/userprops serve" in text
    copy = tmp_path / name
    copy.write_text(text.replace("/opt/userprops/.venv/bin/userprops", USERPROPS))
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr.strip()) == (0, ""), done.stderr


def test_nginx_serves_the_api_through_the_example(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "scripts/test installs nginx-light"
    with live_server(tmp_path) as server:
        site = (DEPLOY / "nginx" / "userprops.conf").read_text()
        site = re.sub(r"server 127\.0\.0\.1:800\d[^;]*;", "", site)
        site = site.replace("least_conn;", f"least_conn;\n    server 127.0.0.1:{server.port};")
        port = free_port()
        site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        (tmp_path / "userprops.conf").write_text(site)
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
            "worker_processes 1;\nevents { worker_connections 64; }\n"
            f"http {{\n access_log off;\n client_body_temp_path {tmp_path};\n"
            f" proxy_temp_path {tmp_path};\n include {tmp_path}/userprops.conf;\n}}\n"
        )
        checked = subprocess.run(
            [nginx, "-t", "-c", str(conf), "-p", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stderr
        proxy = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"])
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "error.log").read_text()
                time.sleep(0.05)
            body = {"identity_name": "user_id", "identity_values": ["via-nginx"]}
            r = httpx.post(base + "/v1/user/register", json=body, headers=server.auth_header)
            euid = r.json()["data"][0]["euid"]
            r = httpx.post(
                base + "/v1/user/property",
                headers=server.auth_header,
                json={"euid": euid, "type": "set", "properties": {"via": "nginx"}},
            )
            assert r.json() == {"code": 0, "message": "success"}
            assert server.props(euid) == {"via": "nginx"}
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)

"""render.yaml: run its start command on a free local port and get 200 from its health check."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import ROOT


def render_field(name: str) -> str:
    text = (ROOT / "render.yaml").read_text()
    match = re.search(rf"^\s+{name}:\s*(.+)$", text, re.MULTILINE)
    assert match, f"render.yaml has no {name}"
    return match.group(1).strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_render_blueprint_declares_auto_deploy_and_requirements():
    assert render_field("autoDeploy") == "true"
    assert "requirements.txt" in render_field("buildCommand")
    assert "webapp:create_app()" in render_field("startCommand")


def test_start_command_serves_the_health_check(tmp_path):
    command = render_field("startCommand")
    health = render_field("healthCheckPath")
    port = free_port()
    env = {**os.environ, "PORT": str(port),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'render.sqlite'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(command, shell=True, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        status = None
        while time.time() < deadline and status != 200:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2) as r:
                    status = r.status
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                time.sleep(0.3)
        assert status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

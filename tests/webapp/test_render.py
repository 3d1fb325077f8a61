"""render.yaml: its start command, run as Render runs it, on a fresh database, again and again."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
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


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_render_blueprint_declares_auto_deploy_and_requirements():
    assert render_field("autoDeploy") == "true"
    assert "requirements.txt" in render_field("buildCommand")
    assert "webapp:create_app()" in render_field("startCommand")
    assert render_field("healthCheckPath") == "/health/ready"


def test_render_never_runs_open_and_sits_behind_its_proxy():
    text = (ROOT / "render.yaml").read_text()
    assert "FABLENS_AUTH" not in text  # accounts always on there
    assert re.search(r"key: FABLENS_PROXY_FIX\s+value: \"1\"", text)


def start(command: str, port: int, database: Path, cwd: Path = ROOT) -> subprocess.Popen:
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{database}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.Popen(command, shell=True, cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for(proc: subprocess.Popen, url: str, seconds: float = 60) -> tuple[int, dict]:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            return get(url)
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url} in {seconds} s")


def settle(url: str, seconds: float = 300) -> tuple[int, dict]:
    """Readiness once no module is still loading; each answer within ``get``'s 5 s timeout."""
    deadline = time.time() + seconds
    status, body = get(url)
    while body["status"] == "loading" and time.time() < deadline:
        assert status == 503 and body["loading"], body
        time.sleep(0.3)
        status, body = get(url)
    return status, body


def stop(proc: subprocess.Popen) -> str:
    os.killpg(proc.pid, signal.SIGTERM)
    output, _ = proc.communicate(timeout=30)
    return output.decode()


def test_start_command_on_a_fresh_database_ten_times(tmp_path):
    """Each start: a new SQLite file (Render's disk is new on each deploy), two workers.

    Before migrations ran once in the master, both workers raced to create the tables and
    one start in a few failed ("table runs already exists").
    """
    command = render_field("startCommand")
    health = render_field("healthCheckPath")
    for attempt in range(10):
        port = free_port()
        proc = start(command, port, tmp_path / f"render-{attempt}.sqlite")
        try:
            status, body = wait_for(proc, f"http://127.0.0.1:{port}/health")
            assert (status, body["status"]) == (200, "ok"), body
            # readiness answers at once (get's 5 s timeout) while the worker's loader works,
            # never loading a model itself; then every answer is ready, schema in place
            status, body = settle(f"http://127.0.0.1:{port}{health}")
            assert status == 200, body
            assert all(m["state"] == "ready" for m in body["modules"].values()), body
            for _ in range(4):
                status, body = get(f"http://127.0.0.1:{port}{health}")
                assert status == 200, body
            assert proc.poll() is None, "gunicorn stopped"
        finally:
            output = stop(proc)
        assert "Worker failed to boot" not in output and "already exists" not in output, output[-3000:]
        # a fresh database has no user: the start hook made 'admin' and logged its password
        assert output.count("created user 'admin' with the one-time password") == 1, output[-3000:]
        # the app logs JSON lines on stdout, one per request, each with its request id
        requests = [json.loads(line) for line in output.splitlines() if line.startswith("{")
                    and '"logger": "webapp.requests"' in line]
        assert any(r["path"] == health and r["request_id"] for r in requests), output[-3000:]

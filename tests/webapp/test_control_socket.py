"""Two servers on one machine, started as render.yaml starts one: stopping one leaves the
other whole. gunicorn (25.1+) opened a control socket at one path per user
($XDG_RUNTIME_DIR/gunicorn.ctl), so the second server took it over and stopping either
deleted it for the other; FabLens turns it off (``webapp/gunicorn_conf.py``)."""
from __future__ import annotations

import re
import stat
from pathlib import Path

from tests.webapp.test_render import free_port, get, render_field, start, stop, wait_for

LISTENING = re.compile(r"Control socket listening at (\S+)")


def sockets_under(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*")
            if stat.S_ISSOCK(p.lstat().st_mode)]


def test_stopping_one_server_leaves_the_other_and_no_shared_control_socket(tmp_path,
                                                                           monkeypatch):
    # gunicorn's default control-socket place, shared by both servers (and not the real home)
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    command = render_field("startCommand")
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    servers = {}
    outputs = {}
    try:
        for port in (first, second):
            servers[port] = start(command, port, tmp_path / f"server-{port}.sqlite")
        for port, proc in servers.items():
            status, body = wait_for(proc, f"http://127.0.0.1:{port}/health")
            assert (status, body["status"]) == (200, "ok"), body
        # both masters are past spawning their worker, when gunicorn opens its socket
        assert sockets_under(home, runtime) == []
        assert not (runtime / "gunicorn.ctl").exists()
        assert not (home / ".gunicorn" / "gunicorn.ctl").exists()

        outputs[first] = stop(servers.pop(first))
        status, body = get(f"http://127.0.0.1:{second}/health")
        assert (status, body["status"]) == (200, "ok"), body
        assert servers[second].poll() is None, "the other server stopped"
        assert sockets_under(home, runtime) == []
    finally:
        for port, proc in servers.items():
            outputs[port] = stop(proc) if proc.poll() is None else \
                proc.communicate()[0].decode()
    # whatever control socket a server opened was its own
    opened = {port: set(LISTENING.findall(output)) for port, output in outputs.items()}
    assert not opened[first] & opened[second], opened
    assert all("Worker failed to boot" not in output for output in outputs.values()), outputs

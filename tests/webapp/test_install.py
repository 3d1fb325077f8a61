"""A regular (non-editable) install works from any directory, or refuses to start clearly.

The project is installed with pip into a fresh environment (its dependencies borrowed from
the test environment through a .pth file) and run from an unrelated folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import flask
import pytest

from tests.conftest import ROOT

CHECK = """
import json, sys
import webapp
from webapp import create_app
from webapp.db import upgrade
upgrade("sqlite:///" + sys.argv[1])
app = create_app({"DATABASE_URL": "sqlite:///" + sys.argv[1]})
client = app.test_client()
print(json.dumps({
    "webapp": webapp.__file__, "home": app.config["HOME_DIR"],
    "page": client.get("/sensor/").status_code,
    "ready": client.get("/health/ready").status_code,
    "sample": client.get("/sensor/sample.csv?rows=5").status_code,
    "script": client.get("/static/js/lib/grid.js").status_code,
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("install") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--prefix", str(prefix), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "dependencies.pth").write_text(str(Path(flask.__file__).resolve().parents[1]) + "\n")
    return prefix


def run(prefix: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "FABLENS_ARTIFACTS_DIR", "DATABASE_URL")}
    return subprocess.run([str(prefix / "bin" / "python"), "-c", CHECK, str(cwd / "db.sqlite")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_installed_app_serves_from_another_directory(installed, tmp_path):
    out = run(installed, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["webapp"].startswith(str(installed))  # the installed copy, not the checkout
    assert result["home"] == str(installed / "share" / "fablens")
    assert (result["page"], result["ready"], result["sample"], result["script"]) == (200, 200, 200, 200)


def test_install_without_templates_refuses_to_start(installed, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(installed, broken, symlinks=True)
    shutil.rmtree(broken / "share" / "fablens" / "templates")
    site = next((broken / "lib").glob("python*/site-packages"))
    assert (site / "dependencies.pth").exists()
    out = run(broken, tmp_path)
    assert out.returncode != 0
    assert "ConfigError: FabLens cannot find its templates" in out.stderr

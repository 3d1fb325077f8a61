"""A regular (non-editable) install works from any directory, or refuses to start clearly.

The project is built into a wheel, installed into a fresh environment (its dependencies
borrowed from the test environment through a .pth file) and run from an unrelated folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
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
app = create_app({"DATABASE_URL": "sqlite:///" + sys.argv[1], "READY_WAIT_SECONDS": 300})
from webapp.accounts import create_token, create_user
with app.app_context():  # accounts are on outside the tests: the checks use a viewer's token
    create_user("vic", "viewer", "password-1")
    token = create_token("vic")[1]
client = app.test_client()
client.environ_base["HTTP_AUTHORIZATION"] = "Bearer " + token
print(json.dumps({
    "webapp": webapp.__file__, "home": app.config["HOME_DIR"],
    "page": client.get("/sensor/").status_code,
    "login": client.get("/login").status_code,
    "ready": client.get("/health/ready").status_code,
    "sample": client.get("/sensor/sample.csv?rows=5").status_code,
    "script": client.get("/static/js/lib/grid.js").status_code,
}))
"""


def install_wheel(wheel: Path, prefix: Path, site: Path) -> None:
    """Unpack a wheel the way an installer does: code to site-packages, data under the prefix.

    (``pip install --prefix`` would also uninstall the test environment's editable copy.)
    """
    data = wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".data/"
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(data + "data/"):
                target = prefix / member[len(data + "data/"):]
            elif member.startswith(data + "purelib/"):
                target = site / member[len(data + "purelib/"):]
            else:
                target = site / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("install")
    prefix = work / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--wheel-dir", str(work), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    install_wheel(next(work.glob("fablens-*.whl")), prefix, site)
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
    assert (result["page"], result["ready"], result["sample"], result["script"],
            result["login"]) == (200, 200, 200, 200, 200)


def test_install_without_templates_refuses_to_start(installed, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(installed, broken, symlinks=True)
    shutil.rmtree(broken / "share" / "fablens" / "templates")
    site = next((broken / "lib").glob("python*/site-packages"))
    assert (site / "dependencies.pth").exists()
    out = run(broken, tmp_path)
    assert out.returncode != 0
    assert "ConfigError: FabLens cannot find its templates" in out.stderr

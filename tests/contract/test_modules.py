"""Contract tests over every registered web module, unedited when a module is added.

For each ready module: the page renders; the predict API answers a bad file with a 4xx JSON
error naming the problem; the results CSV holds every row and is formula-safe; serving never
imports torch. Planned modules show in the navigation and on the home page only.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from flask import url_for

from pipelines.core.problems import is_number_text
from webapp.downloads import FORMULA_TRIGGERS
from webapp.modules import registered
from webapp.predictors import get_predictor
from tests.conftest import ROOT, sqlite_url

READY = [spec.name for spec in registered() if spec.ready]
ALL = [spec.name for spec in registered()]


def spec_of(name):
    return next(s for s in registered() if s.name == name)


def examples_of(app, name):
    spec = spec_of(name)
    assert spec.examples is not None, f"{name} is ready but gives no contract examples"
    with app.app_context():
        return spec.examples(get_predictor(name))


def post_file(client, url, example):
    return client.post(url, data={"file": (io.BytesIO(example.data), example.filename)},
                       content_type="multipart/form-data")


def test_registry_names_are_unique_and_four_modules_are_known():
    assert len(ALL) == len(set(ALL))
    assert {"sensor", "wafermap", "timeseries", "inspection"} <= set(ALL)


@pytest.mark.parametrize("name", READY)
def test_page_renders_with_the_shared_skeleton(client, app, name):
    spec = spec_of(name)
    with app.test_request_context():
        url = url_for(spec.page)
    response = client.get(url)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for piece in ('id="step-data"', 'id="step-review"', 'id="step-results"', 'id="page-config"',
                  'id="api"', f"js/{name}.js"):
        assert piece in html, piece
    for other in registered():  # the navigation comes from the registry
        assert other.title in html


@pytest.mark.parametrize("name", READY)
def test_bad_file_gets_a_4xx_json_error_naming_the_problem(client, app, name):
    bad = examples_of(app, name).bad
    with app.test_request_context():
        url = url_for(spec_of(name).predict)
    response = post_file(client, url, bad)
    assert 400 <= response.status_code < 500
    body = response.get_json()
    assert {"error", "message", "problems"} <= set(body)
    assert bad.needle in body["message"] and bad.filename in body["message"]


@pytest.mark.parametrize("name", READY)
def test_results_csv_holds_every_row_and_is_formula_safe(client, app, name):
    good = examples_of(app, name).good
    with app.test_request_context():
        url = url_for(spec_of(name).predict) + "?format=csv"
    response = post_file(client, url, good)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) - 1 == good.n_rows
    cells = [cell for row in rows for cell in row]
    unsafe = [c for c in cells if c.startswith(FORMULA_TRIGGERS) and not is_number_text(c)]
    assert not unsafe, unsafe[:5]
    assert any(c.startswith("'=") for c in cells), "the example should exercise the guard"


def test_home_and_navigation_list_every_module(client):
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="card module-card') == len(ALL)
    assert html.count("Coming soon") == len(ALL) - len(READY)
    models = client.get("/api/v1/models").get_json()
    assert [m["name"] for m in models["modules"]] == ALL
    assert {m["module"] for m in models["models"]} == set(READY)


@pytest.mark.parametrize("name", READY)
def test_serving_a_module_never_imports_torch(tmp_path, name):
    code = f"""
import io, sys
from flask import url_for
from webapp import create_app
from webapp.db import upgrade
from webapp.modules import get_module
from webapp.predictors import get_predictor
upgrade({sqlite_url(tmp_path)!r})
app = create_app({{"TESTING": True, "DATABASE_URL": {sqlite_url(tmp_path)!r},
                  "READY_WAIT_SECONDS": 300}})  # readiness waits for every module's load
spec = get_module({name!r})
with app.app_context():
    good = spec.examples(get_predictor({name!r})).good
with app.test_request_context():
    page, predict = url_for(spec.page), url_for(spec.predict)
client = app.test_client()
assert client.get(page).status_code == 200
r = client.post(predict, data={{"file": (io.BytesIO(good.data), good.filename)}})
assert r.status_code == 200, r.data[:300]
assert client.get("/health/ready").status_code == 200
print("TORCH_IMPORTED", "torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "TORCH_IMPORTED False"

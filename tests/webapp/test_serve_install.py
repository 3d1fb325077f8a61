"""The web app serves every module with requirements.txt alone (what Render and `make serve`
install): the training and scale extras (scikit-learn, imbalanced-learn, torch, onnx, Dask,
pyarrow) are made unimportable in a fresh interpreter, which then migrates a database, loads
every module and answers each module's contract example. A module-level import of one of them
anywhere on the serving path (as pipelines.core.evaluation's scikit-learn once was, through
the Models page's metric names) fails here instead of on the deploy."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

EXTRAS = ("sklearn", "imblearn", "torch", "onnx", "onnxscript", "dask", "distributed", "pyarrow")

SCRIPT = r'''
import importlib.abc, json, os, sys

BLOCKED = set(json.loads(sys.argv[1]))


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not in requirements.txt)")
        return None


sys.meta_path.insert(0, NotInstalled())
os.environ["FABLENS_AUTH"] = "open"
os.environ["DATABASE_URL"] = "sqlite:///" + sys.argv[2]
from benchmarks.server_memory import multipart
from webapp import create_app
from webapp.db import upgrade
from webapp.predictors import get_predictor
from webapp.registry import registered

upgrade(os.environ["DATABASE_URL"])
app = create_app()
client = app.test_client()
answers = {}
for spec in registered():
    with app.test_request_context():
        from flask import url_for
        good = spec.examples(get_predictor(spec.name)).good
        path = url_for(spec.predict)
    body, content_type = multipart(good.data, good.filename)
    response = client.post(path, data=body, headers={"Content-Type": content_type})
    answers[spec.name] = [response.status_code, response.get_json().get("model")]
print(json.dumps({"answers": answers,
                  "loaded": sorted(m for m in BLOCKED if m in sys.modules)}))
'''


def test_every_module_serves_with_requirements_txt_alone(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(EXTRAS),
                          str(tmp_path / "serve.db")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(doc["answers"]) == {"sensor", "wafermap", "timeseries", "inspection"}
    assert all(status == 200 for status, _ in doc["answers"].values()), doc["answers"]
    assert doc["loaded"] == []

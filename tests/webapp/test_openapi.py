"""The OpenAPI document (/api/v1/openapi.json) and its docs page (/api/docs).

The document is built from the URL map and the request models that validate the requests, so
these tests check that it lists every rule under /api/, that each POST names its body, that
the body schemas are those models' own, and that real error answers match ErrorBody.
"""
from __future__ import annotations

import re

import pytest

from webapp.events import AcknowledgeBody
from webapp.modules.sensor.parsing import SensorPredictBody
from webapp.modules.timeseries.parsing import DetectBatchBody, DetectBody
from webapp.modules.wafermap.parsing import WafermapPredictBody
from webapp.openapi import REF, ErrorBody

DOC = "/api/v1/openapi.json"
PUBLIC_ENDPOINTS = ("api.openapi", "api.docs")
# POSTs that take no JSON or form body: the id is in the path (an upload's part is raw bytes)
BODYLESS = {"events.acknowledge_api", "jobs.api_cancel", "jobs.upload_part"}


@pytest.fixture(autouse=True)
def docs_access_rules(monkeypatch):
    """While webapp/access.py is being written (not committed), its table may not yet name
    the docs routes; test_the_access_table_makes_the_docs_public says so on its own."""
    try:
        from webapp import access
    except ImportError:
        return
    for endpoint in PUBLIC_ENDPOINTS:
        if endpoint not in access.RULES:
            monkeypatch.setitem(access.RULES, endpoint, access.PUBLIC)


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule)


def test_the_document_lists_every_api_rule_and_method(app, client):
    doc = client.get(DOC).get_json()
    assert doc["openapi"].startswith("3.1")
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api/")]
    assert len(rules) >= 10
    for rule in rules:
        path = openapi_path(rule.rule)
        assert path in doc["paths"], f"{rule.rule} ({rule.endpoint}) is not documented"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = doc["paths"][path].get(method.lower())
            assert op, f"{method} {rule.rule} is not documented"
            assert op["summary"] and op["responses"]["200"]
            if method == "POST" and rule.endpoint not in BODYLESS:
                assert op.get("requestBody"), f"POST {rule.rule} names no request body"
    assert {"/health", "/health/ready"} <= set(doc["paths"])  # JSON, though not under /api/
    ack = doc["paths"]["/api/v1/events/{event_id}/acknowledge"]["post"]
    assert ack["parameters"][0] == {"name": "event_id", "in": "path", "required": True,
                                    "schema": {"type": "integer", "minimum": 1,
                                               "maximum": 2**63 - 1}}


def test_request_bodies_are_the_validating_models_schemas(client):
    doc = client.get(DOC).get_json()
    schemas = doc["components"]["schemas"]
    bodies = {"/api/v1/sensor/predict": SensorPredictBody,
              "/api/v1/wafermap/predict": WafermapPredictBody,
              "/api/v1/timeseries/detect": DetectBody,
              "/api/v1/timeseries/detect/batch": DetectBatchBody,
              "/api/v1/events/acknowledge": AcknowledgeBody}
    for path, model in bodies.items():
        content = doc["paths"][path]["post"]["requestBody"]["content"]
        assert content["application/json"]["schema"] == {"$ref": REF.format(model=model.__name__)}
        own = model.model_json_schema(ref_template=REF)
        for name, sub in own.pop("$defs", {}).items():
            assert schemas[name] == sub
        assert schemas[model.__name__] == own
    for module in ("sensor", "wafermap", "timeseries", "inspection"):
        op = doc["paths"][f"/api/v1/{module}/predict"]["post"]
        form = op["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        fields = schemas[form.rsplit("/", 1)[-1]]["properties"]
        assert fields["file"]["type"] == "string" and fields["file"]["format"] == "binary"
        assert "text/csv" in op["responses"]["200"]["content"]
        assert {"400", "401", "403", "413", "415"} <= set(op["responses"])
        assert any(p["name"] == "format" and p["in"] == "query" for p in op["parameters"])
    error = {"$ref": REF.format(model="ErrorBody")}
    assert doc["paths"]["/api/v1/sensor/predict"]["post"]["responses"]["400"]["content"] == \
        {"application/json": {"schema": error}}
    assert doc["paths"][DOC]["get"]["security"] == []


def test_error_answers_match_the_documented_envelope(client):
    bad = client.post("/api/v1/sensor/predict", json={"instances": [], "extra": 1})
    assert bad.status_code == 400
    body = ErrorBody.model_validate(bad.get_json())
    assert body.problems and body.problems[0].path
    for event_id in (999999, 2**70):  # beyond what the database can store: still a 404
        missing = client.post(f"/api/v1/events/{event_id}/acknowledge")
        assert missing.status_code == 404, missing.get_data(as_text=True)
        ErrorBody.model_validate(missing.get_json())
    many = client.post("/api/v1/events/acknowledge", json={"ids": [1, 2**70]})
    assert many.status_code == 404 and str(2**70) in many.get_json()["message"]


def test_detect_fields_are_the_documented_ones(client):
    """The detect parser's field check and the documented models name the same fields."""
    unknown = client.post("/api/v1/timeseries/detect", json={"machine_id": "m", "window": [[1]],
                                                             "nope": 1})
    assert unknown.status_code == 400 and unknown.get_json()["message"].startswith("nope:")
    batch = client.post("/api/v1/timeseries/detect/batch", json={"windows": [
        {"machine_id": "m", "window": [[1]], "model": "x"}]})
    assert batch.status_code == 400 and "windows[0].model: unknown field" in \
        batch.get_json()["message"]


def test_docs_page_lists_every_operation_without_inline_script(client):
    doc = client.get(DOC).get_json()
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'class="topbar"' in html  # the site's own layout (base.html)
    for path, methods in doc["paths"].items():
        for method in methods:
            assert f"{method.upper()} {path}" in html
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in html
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script on the docs page: {tag}"
    assert 'href="/api/docs">API reference</a>' in client.get("/").get_data(as_text=True)
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_the_access_table_makes_the_docs_public(monkeypatch):
    access = pytest.importorskip("webapp.access")
    monkeypatch.undo()  # the table as written, not as the autouse fixture completed it
    for endpoint in PUBLIC_ENDPOINTS:
        assert access.RULES.get(endpoint) == access.PUBLIC, \
            f"{endpoint} needs a rule in webapp/access.py (public)"


def test_every_predict_answer_is_documented_as_the_shared_one(client):
    """The four predict operations answer one documented shape: the prediction service's."""
    doc = client.get(DOC).get_json()
    predicts = [path for path in doc["paths"] if path.endswith("/predict")]
    assert len(predicts) == 4
    for path in predicts:
        ok = doc["paths"][path]["post"]["responses"]["200"]["content"]
        assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/PredictAnswer"}
        assert "text/csv" in ok
    answer = doc["components"]["schemas"]["PredictAnswer"]
    assert {"run_id", "n_items", "n_flagged", "threshold", "predictions"} <= set(answer["required"])

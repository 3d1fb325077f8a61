"""API tests with the Flask test client, against the committed artifacts."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipelines.sensor.schema import SENSOR_COLUMNS
from tests.conftest import ROOT, make_batch_frame, settled_readiness, sqlite_url, to_csv_bytes


def upload(client, data: bytes, name: str = "batch.csv", query: str = "", **form):
    return client.post(f"/api/v1/sensor/predict{query}",
                       data={"file": (io.BytesIO(data), name), **form},
                       content_type="multipart/form-data")


def test_health(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    ready = settled_readiness(client).get_json()
    assert "autoencoder" in ready["modules"]["sensor"]["models"]


def test_models_lists_thresholds_and_metrics(client):
    models = client.get("/api/v1/models").get_json()["models"]
    by_role = {m["role"]: m for m in models if m["module"] == "sensor"}
    assert set(by_role) == {"classifier", "anomaly"}
    for model in by_role.values():
        assert 0 < model["threshold"]["target_false_alarm_rate"] < 1
        assert "value" in model["threshold"]
        assert {"roc_auc", "pr_auc", "recall"} <= set(model["metrics"]["cv"])
    assert by_role["classifier"]["shipped"] == by_role["classifier"]["name"]


def test_predict_json_lists(client):
    frame = make_batch_frame(4)
    rows = frame[SENSOR_COLUMNS].to_numpy().tolist()
    rows[1][10] = None
    response = client.post("/api/v1/sensor/predict", json={"instances": rows})
    assert response.status_code == 200
    body = response.get_json()
    assert len(body["predictions"]) == 4
    assert body["imputed_cells"] == 1
    first = body["predictions"][0]
    assert {"fault_score", "is_fault", "top_sensors"} <= set(first)
    assert "anomaly_score" not in first  # the hidden autoencoder is scored only when it decides
    assert 0.0 <= first["fault_score"] <= 1.0
    assert len(first["top_sensors"]) == 3
    assert all(s["sensor"] in SENSOR_COLUMNS for s in first["top_sensors"])
    assert body["predictions"][1]["imputed_cells"] == 1


def test_predict_json_dicts_and_threshold_override(client):
    frame = make_batch_frame(6)
    records = frame[SENSOR_COLUMNS].to_dict("records")
    low = client.post("/api/v1/sensor/predict", json={"instances": records, "threshold": 0.0})
    high = client.post("/api/v1/sensor/predict", json={"instances": records, "threshold": 1.0})
    assert low.status_code == high.status_code == 200
    outside = client.post("/api/v1/sensor/predict", json={"instances": records, "threshold": 1.01})
    assert outside.status_code == 400 and "outside the scores" in outside.get_json()["message"]
    assert low.get_json()["threshold"] == 0.0
    assert all(p["is_fault"] for p in low.get_json()["predictions"])
    assert not any(p["is_fault"] for p in high.get_json()["predictions"])


def test_predict_with_the_autoencoder_decides_on_anomaly_score(client):
    frame = make_batch_frame(3)
    body = client.post("/api/v1/sensor/predict", json={
        "instances": frame[SENSOR_COLUMNS].to_numpy().tolist(), "model": "autoencoder"}).get_json()
    assert body["model"] == "autoencoder"
    for p in body["predictions"]:
        assert p["is_fault"] == (p["anomaly_score"] >= body["threshold"])
        assert 0.0 <= p["fault_score"] <= 1.0  # the shown classifier is scored beside it


def test_predict_csv_upload_carries_ids(client):
    frame = make_batch_frame(5)
    body = upload(client, to_csv_bytes(frame)).get_json()
    assert [p["id"] for p in body["predictions"]] == frame["Wafer"].tolist()
    assert body["id_column"] == "Wafer"


def test_predict_csv_download_has_every_row(client):
    frame = make_batch_frame(250)
    response = upload(client, to_csv_bytes(frame), query="?format=csv", threshold="0.5")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    results = pd.read_csv(io.BytesIO(response.data))
    assert len(results) == 250
    assert results["id"].tolist() == frame["Wafer"].tolist()
    assert (results["threshold"] == 0.5).all()
    assert {"fault_score", "is_fault", "top_sensor_1"} <= set(results)
    assert "anomaly_score" not in results


def test_predict_records_the_run(client, app):
    from webapp import db
    upload(client, to_csv_bytes(make_batch_frame(3)))
    with app.app_context():
        runs = db.recent_runs()
    assert runs[0]["rows"] == 3 and runs[0]["module"] == "sensor"


def test_secom_layout_upload(client, data_dir):
    secom = pd.read_csv(data_dir / "secom" / "uci-secom.csv.gz", nrows=20)
    body = upload(client, to_csv_bytes(secom), "secom.csv").get_json()
    assert len(body["predictions"]) == 20
    assert body["predictions"][0]["id"] == str(secom["Time"][0])
    assert body["imputed_cells"] == int(secom.iloc[:, 1:591].isna().sum().sum())


@pytest.mark.parametrize("data,name,status,needle", [
    (b"", "empty.csv", 400, "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "photo.png", 415, "not a CSV"),
    (b"Wafer,Sensor-1,Sensor-2\nW1,1,2\n", "narrow.csv", 400, "expected"),
    (b"Wafer," + ",".join(SENSOR_COLUMNS).encode() + b"\n", "header_only.csv", 400, "no data rows"),
])
def test_bad_uploads_get_clear_errors(client, data, name, status, needle):
    response = upload(client, data, name)
    assert response.status_code == status
    body = response.get_json()
    assert needle in body["message"]
    assert name in body["message"] or any(p.get("file") == name for p in body["problems"])


def test_non_numeric_cell_is_located(client):
    frame = make_batch_frame(4).astype(object)
    frame.loc[2, "Sensor-17"] = "abc"
    body = upload(client, to_csv_bytes(frame), "typo.csv").get_json()
    assert body["problems"][0] == {"message": "'abc' is not a number", "file": "typo.csv",
                                   "row": 3, "column": "Sensor-17"}


def test_missing_id_column_numbers_the_rows_and_says_so(client):
    frame = make_batch_frame(2).drop(columns="Wafer")
    body = upload(client, to_csv_bytes(frame), "noid.csv").get_json()
    assert [p["id"] for p in body["predictions"]] == ["1", "2"]
    assert body["detected"]["numbered_ids"] and any("numbered" in w for w in body["warnings"])


def test_upload_over_the_size_limit_is_413(tmp_path):
    from webapp import create_app
    app = create_app({"TESTING": True, "MAX_CONTENT_LENGTH": 10_000,
                      "DATABASE_URL": sqlite_url(tmp_path)})
    response = upload(app.test_client(), to_csv_bytes(make_batch_frame(20)))
    assert response.status_code == 413
    assert "limit" in response.get_json()["message"]


def test_too_many_rows_is_413_naming_the_limit(tmp_path):
    from webapp import create_app
    from webapp.db import upgrade
    upgrade(sqlite_url(tmp_path))
    app = create_app({"TESTING": True, "MAX_ROWS": 10, "DATABASE_URL": sqlite_url(tmp_path)})
    response = upload(app.test_client(), to_csv_bytes(make_batch_frame(11)), "many.csv")
    assert response.status_code == 413
    assert "11 rows is more than the 10 row limit" in response.get_json()["message"]


@pytest.mark.parametrize("body,needle", [
    ({"instances": [[1, 2, 3]]}, "expected 590 values"),
    ({"instances": [{"Sensor-1": 1, "Sensr-2": 3}]}, "unknown sensor"),
    ({"instances": [[None] * 589 + ["x"]]}, "not a number"),
    ({"instances": []}, "at least 1 item"),
    ({"rows": []}, "instances"),
    ({"instances": [[0.0] * 590], "threshold": "high"}, "threshold: Input should be a valid number"),
    ({"instances": [[0.0] * 590], "model": "magic"}, "choose one of"),
])
def test_bad_json_gets_400(client, body, needle):
    response = client.post("/api/v1/sensor/predict", json=body)
    assert response.status_code == 400
    assert needle in response.get_json()["message"]


def test_invalid_json_body_is_400_saying_where(client):
    response = client.post("/api/v1/sensor/predict", data="a,b", content_type="text/plain")
    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["message"] and "column 1" in response.get_json()["message"]


def test_unknown_api_route_is_json_404(client):
    response = client.get("/api/v1/nothing")
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


def test_creating_the_app_and_predicting_never_imports_torch(tmp_path):
    code = (
        "import sys, io\n"
        "from webapp import create_app\n"
        "from webapp.db import upgrade\n"
        f"upgrade({sqlite_url(tmp_path)!r})\n"
        f"app = create_app({{'TESTING': True, 'DATABASE_URL': {sqlite_url(tmp_path)!r}}})\n"
        "c = app.test_client()\n"
        "r = c.post('/api/v1/sensor/predict', json={'instances': [[0.0]*590]})\n"
        "assert r.status_code == 200, r.data\n"
        "r = c.get('/sensor/')\n"
        "assert r.status_code == 200, r.status_code\n"
        "print('TORCH_IMPORTED', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    marker = [line for line in out.stdout.splitlines() if line.startswith("TORCH_IMPORTED")]
    assert marker == ["TORCH_IMPORTED False"]


def test_sample_and_template_downloads(client):
    sample = client.get("/sensor/sample.csv?rows=30")
    assert sample.status_code == 200 and sample.mimetype == "text/csv"
    frame = pd.read_csv(io.BytesIO(sample.data))
    assert len(frame) == 30 and list(frame.columns) == ["Wafer", *SENSOR_COLUMNS]
    body = upload(client, sample.data, "sample.csv").get_json()
    assert body["n_rows"] == 30
    template = client.get("/sensor/template.csv")
    assert template.data.decode().strip() == ",".join(["Wafer", *SENSOR_COLUMNS])


def test_sample_flags_some_but_not_most_wafers(client):
    """The generated sample should show the page's flagged state as well as normal wafers."""
    sample = client.get("/sensor/sample.csv?rows=400").data
    body = upload(client, sample, "sample.csv").get_json()
    share = body["n_flagged"] / body["n_rows"]
    assert 0.02 < share < 0.5


def test_check_endpoint_summarises_or_lists_problems(client):
    ok = client.post("/sensor/check", data={"file": (io.BytesIO(to_csv_bytes(make_batch_frame(3))),
                                                     "ok.csv")},
                     headers={"X-Requested-With": "fetch"})
    assert ok.status_code == 200 and ok.get_json()["n_rows"] == 3
    bad = client.post("/sensor/check", data={"file": (io.BytesIO(b"a,b\n1,2\n"), "bad.csv")},
                      headers={"X-Requested-With": "fetch"})
    assert bad.status_code == 400 and bad.get_json()["problems"]


def test_pages_render(client):
    for url in ("/", "/sensor/", "/history"):
        response = client.get(url)
        assert response.status_code == 200, url
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and b"<html" in missing.data.lower()

"""``/metrics``: Prometheus text that prometheus_client's own parser reads, counters that move,
access by token or network, and one sum over every gunicorn worker."""
from __future__ import annotations

import io
import time
import urllib.request

import pytest
from flask import url_for
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import sqlite_url
from tests.webapp.test_render import free_port, render_field, start, stop, wait_for
from webapp import create_app
from webapp.db import upgrade
from webapp.predictors import get_predictor
from webapp.registry import ready_modules

REMOTE = {"REMOTE_ADDR": "10.1.2.3"}


def samples(text: str) -> dict[tuple, float]:
    """Every sample: (name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client, **kwargs) -> dict:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(True)[:300]
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def make_app(tmp_path, **config):
    url = sqlite_url(tmp_path)
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url, **config})


def test_counters_move_after_a_prediction(tmp_path):
    app = make_app(tmp_path)
    client = app.test_client()
    spec = next(s for s in ready_modules())
    with app.app_context():
        good = spec.examples(get_predictor(spec.name)).good
    with app.test_request_context():
        url = url_for(spec.predict)
    before = scrape(client)
    response = client.post(url, data={"file": (io.BytesIO(good.data), good.filename)},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(True)[:300]
    answer = response.get_json()
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    version = answer["model_version"] or ""
    endpoint = f"{spec.predict}"
    request = dict(endpoint=endpoint, method="POST", status="200")
    assert moved("fablens_http_requests_total", **request) == 1
    assert moved("fablens_http_request_duration_seconds_count", **request) == 1
    assert moved("fablens_http_request_duration_seconds_sum", **request) > 0
    # the scrape before this one was counted too (after it answered)
    assert moved("fablens_http_requests_total", endpoint="metrics.metrics", method="GET",
                 status="200") == 1
    module = dict(module=spec.name, version=version)
    assert moved("fablens_prediction_runs_total", **module) == 1
    assert moved("fablens_predicted_items_total", **module) == answer["n_items"] > 0
    assert moved("fablens_flagged_items_total", **module) == answer["n_flagged"]
    assert value(after, "fablens_model_load_seconds", module=spec.name) > 0


def test_refused_requests_and_unknown_addresses_are_counted_without_new_labels(tmp_path):
    client = make_app(tmp_path, AUTH="on").test_client()
    before = scrape(client)
    assert client.get("/history", headers={"Accept": "application/json"}).status_code == 401
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)
    assert value(after, "fablens_http_requests_total", endpoint="pages.history", method="GET",
                 status="401") - value(before, "fablens_http_requests_total",
                                       endpoint="pages.history", method="GET",
                                       status="401") == 1
    assert value(after, "fablens_http_requests_total", endpoint="none", method="GET",
                 status="404") >= 1
    assert not [k for k in after if "/no/such/page" in str(k)]


def test_only_loopback_by_default(tmp_path):
    client = make_app(tmp_path).test_client()
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    response = client.get("/metrics", environ_base=REMOTE)
    assert response.status_code == 403
    assert b"fablens_http_requests" not in response.data


def test_token_lets_any_network_in(tmp_path):
    client = make_app(tmp_path, AUTH="on", METRICS_TOKEN="scrape-secret").test_client()
    assert client.get("/metrics", environ_base=REMOTE).status_code == 403
    wrong = {"Authorization": "Bearer not-it"}
    assert client.get("/metrics", environ_base=REMOTE, headers=wrong).status_code == 403
    right = {"Authorization": "Bearer scrape-secret"}
    response = client.get("/metrics", environ_base=REMOTE, headers=right)
    assert response.status_code == 200
    assert "fablens_http_requests_total" in {s[0] for s in samples(response.get_data(True))}


def test_allowed_networks_are_configurable(tmp_path):
    client = make_app(tmp_path, METRICS_ALLOW="10.0.0.0/8, 192.168.1.7").test_client()
    assert client.get("/metrics", environ_base=REMOTE).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.168.1.7"}).status_code == 200
    assert client.get("/metrics").status_code == 403  # loopback no longer listed
    closed = make_app(tmp_path / "closed", METRICS_ALLOW="none",
                      METRICS_TOKEN="t").test_client()
    assert closed.get("/metrics").status_code == 403
    assert closed.get("/metrics", headers={"Authorization": "Bearer t"}).status_code == 200


def test_a_bad_network_is_a_config_error(tmp_path):
    from webapp.config import ConfigError

    with pytest.raises(ConfigError, match="FABLENS_METRICS_ALLOW"):
        make_app(tmp_path, METRICS_ALLOW="10.0.0.0/33")


def test_gunicorn_workers_are_summed(tmp_path):
    """render.yaml's start command with two workers: every worker's requests in one answer.

    PROMETHEUS_MULTIPROC_DIR is set here so the test can see each worker's file; a stale file
    left in it (unreadable, as a crashed server might leave) is removed before workers fork.
    """
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"stale, not a metrics file")
    command = render_field("startCommand").replace("--workers 1", "--workers 2")
    port = free_port()
    proc = start(f"PROMETHEUS_MULTIPROC_DIR={directory} {command}", port,
                 tmp_path / "fablens.sqlite")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(proc, f"{base}/health", seconds=30)
        health = dict(endpoint="api.health", method="GET", status="200")

        def scrape_server() -> dict:
            with urllib.request.urlopen(f"{base}/metrics", timeout=30) as response:
                return samples(response.read().decode())

        before = value(scrape_server(), "fablens_http_requests_total", **health)
        sent, deadline = 0, time.time() + 15
        # until two workers have each answered some (each has its own counter file)
        while sent < 10 or (len(list(directory.glob("counter_*.db"))) < 2
                            and time.time() < deadline):
            with urllib.request.urlopen(f"{base}/health", timeout=30) as response:
                assert response.status == 200
            sent += 1
        files = sorted(p.name for p in directory.glob("counter_*.db"))
        assert len(files) == 2 and "counter_999999.db" not in files, files
        found = scrape_server()
        assert value(found, "fablens_http_requests_total", **health) - before == sent
        assert value(found, "fablens_http_request_duration_seconds_count", **health) \
            == value(found, "fablens_http_requests_total", **health)
    finally:
        output = stop(proc)
    assert "Traceback" not in output, output[-3000:]

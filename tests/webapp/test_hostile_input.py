"""Hostile input against every module's predict API and check page (issue 21): the corpus of
``tests/hostile.py`` and generated bodies (hypothesis) never get a 500, never hang, and are
refused with 400, 413 or 415 and a message; chunked bodies are bounded like any other; the
work of a request stops at its time budget; large requests past the queue get 503 at once.

Each request runs in a thread joined with a generous bound (``HANG``): not a speed target
(those live in benchmarks/), only so that a request that never ends fails the test instead
of hanging the suite.
"""
from __future__ import annotations

import io
import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import sqlite_url
from tests.hostile import file_cases, json_cases
from webapp import create_app
from webapp.db import upgrade

HANG = 120  # seconds after which a request counts as hung (the budget below is 90)
FILE_ENDPOINTS = ["/api/v1/sensor/predict", "/sensor/check", "/api/v1/wafermap/predict",
                  "/wafermap/check", "/api/v1/timeseries/predict", "/timeseries/check",
                  "/api/v1/inspection/predict", "/inspection/check"]
JSON_ENDPOINTS = {"/api/v1/sensor/predict": "instances", "/api/v1/timeseries/detect": "window",
                  "/api/v1/timeseries/detect/batch": "windows",
                  "/api/v1/wafermap/predict": "maps"}
FILES = file_cases()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    url = sqlite_url(tmp_path_factory.mktemp("hostile"))
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url})


def send(client, path: str, **kwargs):
    """The answer to one request, or a failure when it has not come within ``HANG``."""
    out = {}

    def go():
        try:
            out["response"] = client.post(path, **kwargs)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the test's thread)
            out["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(HANG)
    assert not thread.is_alive(), f"{path}: no answer within {HANG} s"
    if "error" in out:
        raise out["error"]
    return out["response"]


def message(response) -> str:
    body = response.get_json(silent=True)
    return body["message"] if body else response.get_data(as_text=True)


def refused(response, allowed=frozenset({400, 413, 415})) -> None:
    assert response.status_code in allowed, (response.status_code, message(response)[:300])
    assert message(response).strip()


@pytest.mark.parametrize("endpoint", FILE_ENDPOINTS)
@pytest.mark.parametrize("case", FILES, ids=[c.name for c in FILES])
def test_every_hostile_file_is_refused_without_a_500(app, endpoint, case):
    response = send(app.test_client(), endpoint,
                    data={"file": (io.BytesIO(case.data), case.filename)},
                    content_type="multipart/form-data",
                    headers={"X-Requested-With": "fetch"})
    refused(response, case.statuses)


@pytest.mark.parametrize("endpoint, kind", JSON_ENDPOINTS.items())
def test_every_hostile_json_body_is_refused_without_a_500(app, endpoint, kind):
    client = app.test_client()
    for case in json_cases(kind):
        response = send(client, endpoint, data=case.raw, content_type="application/json")
        refused(response, case.statuses)


def test_the_limits_are_named(app):
    client = app.test_client()
    big = json_cases("instances")[0]
    answer = send(client, "/api/v1/sensor/predict", data=big.raw,
                  content_type="application/json")
    assert answer.status_code == 413 and "8 MB a JSON body may hold" in message(answer)
    many = json_cases("instances")[1]
    answer = send(client, "/api/v1/sensor/predict", data=many.raw,
                  content_type="application/json")
    assert answer.status_code == 413 and "2,000,000 one request may hold" in message(answer)
    bomb = next(c for c in FILES if c.name.startswith("gzip expanding to 256 MB of text"))
    answer = send(client, "/api/v1/timeseries/predict",
                  data={"file": (io.BytesIO(bomb.data), bomb.filename)},
                  content_type="multipart/form-data")
    assert answer.status_code == 413 and "expands to more than 64 MB" in message(answer)
    from tests.hostile import csv_header

    long_line = next(c for c in FILES if c.name == "80k repeated column names")  # 160 KB
    wide = csv_header(10_000, repeated=True)  # 20 KB
    for path, most in (("/api/v1/sensor/predict", "2,000"),
                       ("/api/v1/timeseries/predict", "202")):
        answer = send(client, path, data={"file": (io.BytesIO(long_line.data), "x.csv")},
                      content_type="multipart/form-data")
        assert answer.status_code == 413 and "header line is longer than 64 KB" in message(answer)
        answer = send(client, path, data={"file": (io.BytesIO(wide), "x.csv")},
                      content_type="multipart/form-data")
        assert answer.status_code == 413
        assert f"10,000 columns; at most {most} are accepted" in message(answer)
    longer = next(c for c in FILES if c.name == "rows longer than the header")
    answer = send(client, "/api/v1/sensor/predict",
                  data={"file": (io.BytesIO(longer.data), longer.filename)},
                  content_type="multipart/form-data")
    assert answer.status_code == 400 and "more than the header's 591 columns" in message(answer)


def chunked(client, path: str, data: bytes, content_type: str):
    """``data`` sent with no Content-Length, as a chunked upload is (the server marks such
    a body's end itself: ``wsgi.input_terminated``, as gunicorn does)."""
    return send(client, path, input_stream=io.BytesIO(data), content_type=content_type,
                headers={"Transfer-Encoding": "chunked"},
                environ_overrides={"wsgi.input_terminated": True})


def test_a_chunked_json_body_over_the_limit_is_a_413_not_invalid_json(app):
    big = json_cases("window")[0]
    answer = chunked(app.test_client(), "/api/v1/timeseries/detect", big.raw,
                     "application/json")
    assert answer.status_code == 413, message(answer)
    assert "more than the 8 MB a JSON body may hold" in message(answer)


def test_a_chunked_json_body_within_the_limit_is_read_whole(app):
    body = json.dumps({"instances": [[1.0] * 590]}).encode()
    answer = chunked(app.test_client(), "/api/v1/sensor/predict", body, "application/json")
    assert answer.status_code == 200, message(answer)
    assert answer.get_json()["n_items"] == 1


def test_work_past_the_time_budget_is_stopped_and_answered_503(tmp_path):
    """A budget of 0 s: the first check between chunks stops the work; the thread is free and
    the next light request is answered."""
    url = sqlite_url(tmp_path)
    upgrade(url)
    app = create_app({"TESTING": True, "DATABASE_URL": url, "REQUEST_BUDGET_SECONDS": 0.0})
    from tests.conftest import make_batch_frame, to_csv_bytes

    client = app.test_client()
    answer = send(client, "/api/v1/sensor/predict", data={
        "file": (io.BytesIO(to_csv_bytes(make_batch_frame(5))), "w.csv")},
        content_type="multipart/form-data")
    assert answer.status_code == 503
    assert "ran past its time budget of 0 s" in message(answer)
    assert client.get("/health").status_code == 200


def test_large_requests_past_the_queue_get_503_with_retry_after(app):
    """With the one slot taken and the queue full, a large upload is answered at once."""
    from webapp.limits import HEAVY

    queue = app.extensions[HEAVY]
    assert queue.slots.acquire(blocking=False)
    queue.waiting = app.config["HEAVY_QUEUE"]
    try:
        from tests.conftest import make_batch_frame, to_csv_bytes

        data = to_csv_bytes(make_batch_frame(300))
        assert len(data) > app.config["HEAVY_REQUEST_MB"] * 1024 * 1024
        answer = send(app.test_client(), "/api/v1/sensor/predict",
                      data={"file": (io.BytesIO(data), "big.csv")},
                      content_type="multipart/form-data")
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "30"
        assert "busy scoring other large files" in message(answer)
        small = send(app.test_client(), "/api/v1/sensor/predict",
                     data=json.dumps({"instances": [[1.0] * 590]}),
                     content_type="application/json")
        assert small.status_code == 200  # light requests never queue
    finally:
        queue.waiting = 0
        queue.slots.release()


# -- generated bodies --------------------------------------------------------------------------
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**500, max_value=10**500),
                    st.floats(allow_nan=True, allow_infinity=True),
                    st.text(alphabet=st.sampled_from('"\\\\[]{},:\r\n=+-@ a1'), max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=6), st.dictionaries(
        st.sampled_from(["instances", "window", "windows", "maps", "cycles", "machine_id",
                         "names", "model", "threshold", "x"]), inner, max_size=4)),
    max_leaves=40)


def _text(value) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=values, nesting=st.integers(min_value=0, max_value=80),
       backslashes=st.integers(min_value=0, max_value=6))
def test_generated_json_never_gets_a_500(app, body, nesting, backslashes):
    """Any JSON-ish body (huge and odd numbers, quotes and backslashes in strings, nesting
    hidden behind them) at every JSON endpoint: never a 500."""
    raw = (b'{"x": "' + b"\\\\" * backslashes + b'", "instances": ' + b"[" * nesting
           + _text(body) + b"]" * nesting + b"}")
    client = app.test_client()
    for endpoint in JSON_ENDPOINTS:
        for data in (_text(body), raw):
            answer = send(client, endpoint, data=data, content_type="application/json")
            assert answer.status_code != 500 and answer.status_code < 600, \
                (endpoint, data[:200], message(answer)[:200])


cells = st.text(alphabet=st.sampled_from('ab1,;"\r\n\t= '), max_size=8)


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(header=st.lists(cells, max_size=30), rows=st.lists(st.lists(cells, max_size=35),
                                                          max_size=5),
       gz=st.booleans(), name=st.sampled_from(["x.csv", "x.txt", "x.csv.gz", "x.xlsx"]))
def test_generated_tables_never_get_a_500(app, header, rows, gz, name):
    """Any small table (quotes, delimiters and line breaks in cells, ragged rows), plain or
    gzipped, at every file endpoint: never a 500."""
    import gzip

    text = "\n".join(",".join(r) for r in [header, *rows]).encode()
    data = gzip.compress(text) if gz else text
    client = app.test_client()
    for endpoint in FILE_ENDPOINTS:
        answer = send(client, endpoint, data={"file": (io.BytesIO(data), name)},
                      content_type="multipart/form-data", headers={"X-Requested-With": "fetch"})
        assert answer.status_code != 500, (endpoint, data[:200], message(answer)[:200])

"""JSON log lines with a request id, taken from X-Request-ID when sent and echoed back."""
from __future__ import annotations

import io
import json
import logging

from webapp import logs


def test_every_answer_carries_a_request_id_taken_from_the_request_when_sent(client):
    sent = client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
    assert sent.headers["X-Request-ID"] == "abc-123_x.y"
    fresh = client.get("/health").headers["X-Request-ID"]
    assert len(fresh) == 32 and fresh != client.get("/health").headers["X-Request-ID"]
    for bad in ("a b", "x" * 65, "<script>", "é"):  # not a plain token: a new id instead
        echoed = client.get("/health", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
        assert echoed != bad and len(echoed) == 32
    refused = client.get("/runs/999999999/results.csv", headers={"X-Request-ID": "r-1"})
    assert refused.status_code == 404 and refused.headers["X-Request-ID"] == "r-1"


def test_log_lines_are_json_with_the_request_id(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RequestIdFilter())
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        client.get("/health", headers={"X-Request-ID": "trace-7"})
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    request_line = next(line for line in lines if line["logger"] == "webapp.requests")
    assert request_line["request_id"] == "trace-7"
    assert (request_line["method"], request_line["path"], request_line["status"]) == (
        "GET", "/health", 200)
    assert request_line["endpoint"] == "api.health" and request_line["ms"] >= 0
    assert request_line["who"] and request_line["level"] == "INFO"


def test_a_traceback_is_one_json_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",),
                                   exc_info=__import__("sys").exc_info())
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed here" and "ValueError: boom" in parsed["exception"]

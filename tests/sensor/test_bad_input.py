"""The bad-input corpus (``tests/sensor/badinput.py``) through the page's check and the API.

Every answer is either accepted (200) or a short JSON error ``{"error", "message",
"problems"}`` with the expected status that locates the problem (file, row and column, or the
JSON path); never a 500, never a traceback, and never the same error twice (a headline that
repeats its one unlocated problem, as the 400-column error did). Uploads that the check
accepts must also score.
"""
from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from pipelines.sensor.schema import SENSOR_COLUMNS
from tests.sensor.badinput import Case, empty_rows_body, file_cases, json_cases

PREDICT = "/api/v1/sensor/predict"
CHECK = "/sensor/check"
FILE_CASES = file_cases()
CHECK_CASES = [c for c in FILE_CASES if c.check]
JSON_CASES = json_cases()
MAX_PROBLEMS = 51  # ~50 listed, the rest counted in the message
MAX_ERROR_BYTES = 16_000


def case_id(case: Case) -> str:
    return case.name


def configured(app, case: Case):
    """A test client of ``app`` with the case's config overrides (e.g. a small MAX_ROWS)."""
    app.config.update(case.config)
    return app.test_client()


def post_check(client, case: Case):
    return client.post(CHECK, data={"file": (io.BytesIO(case.file), case.filename)},
                       content_type="multipart/form-data", headers={"X-Requested-With": "fetch"})


def post_predict(client, case: Case):
    if case.kind == "file":
        return client.post(PREDICT, data={"file": (io.BytesIO(case.file), case.filename),
                                          **case.form}, content_type="multipart/form-data")
    return client.post(PREDICT, data=case.request_bytes(), content_type=case.content_type or None)


def problem_text(problem: dict) -> str:
    """A problem as one line: ``file, row N, column C, path P: message``."""
    where = [problem.get("file"), problem.get("row") and f"row {problem['row']}",
             problem.get("column") and f"column {problem['column']}", problem.get("path")]
    return ", ".join(str(w) for w in where if w) + ": " + str(problem.get("message", ""))


def has_needle(text: str, needle) -> bool:
    options = (needle,) if isinstance(needle, str) else needle
    return any(option.lower() in text.lower() for option in options)


def assert_error(response, case: Case) -> None:
    """A short, located JSON error with one of the case's statuses."""
    raw = response.get_data(as_text=True)
    assert response.status_code in case.status, (response.status_code, raw[:400])
    assert "Traceback" not in raw and 'File "' not in raw, raw[:400]
    assert len(response.data) < MAX_ERROR_BYTES, f"{len(response.data)} bytes of error"
    body = response.get_json(silent=True)
    assert isinstance(body, dict) and {"error", "message", "problems"} <= set(body), raw[:400]
    message, problems = body["message"], body["problems"]
    assert isinstance(message, str) and 0 < len(message) < 300, f"{len(message)}: {message[:400]}"
    assert isinstance(problems, list) and len(problems) <= MAX_PROBLEMS, len(problems)
    text = "\n".join([message, *map(problem_text, problems)])
    for needle in case.needles:
        assert has_needle(text, needle), f"{needle!r} not in: {text[:600]}"
    if case.where:
        assert any(case.where.items() <= p.items() for p in problems), \
            f"no problem at {case.where}: {problems[:5]} / {message}"
    unlocated = [p for p in problems if not {"row", "column", "path"} & set(p)]
    repeated = [p["message"] for p in unlocated if str(p.get("message")) in message]
    assert not repeated, f"the headline repeats an unlocated problem (shown twice): {message}"


def assert_accepted(response, case: Case) -> dict:
    """A 200 whose warnings and detected format match the case."""
    assert response.status_code == 200, (response.status_code, response.data[:600])
    body = response.get_json()
    if case.warning:
        warnings = body.get("warnings")
        assert isinstance(warnings, list) and any(case.warning.lower() in str(w).lower()
                                                  for w in warnings), warnings
    if case.detected and case.kind == "file":
        detected = body.get("detected") or {}
        for key, value in case.detected.items():
            got = detected.get(key, "<missing>")
            assert (sorted(got) if isinstance(value, list) and isinstance(got, list) else got) \
                == value, f"detected[{key!r}] = {got!r}, expected {value!r}"
    return body


def sensor_values(frame: pd.DataFrame) -> np.ndarray:
    return frame[SENSOR_COLUMNS].to_numpy(dtype=float)


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize("case", CHECK_CASES, ids=case_id)
def test_upload_through_the_page_check(app, case):
    response = post_check(configured(app, case), case)
    if response.status_code != 200 or 200 not in case.status:
        assert_error(response, case)
        return
    body = assert_accepted(response, case)
    expected_rows = len(case.ids) if case.ids else None if case.frame is None else len(case.frame)
    assert expected_rows is None or body["n_rows"] == expected_rows
    if case.frame is not None and body.get("csv"):
        normalised = pd.read_csv(io.StringIO(body["csv"]), dtype={0: str})
        np.testing.assert_allclose(sensor_values(normalised), sensor_values(case.frame))
        if case.ids:
            assert tuple(normalised.iloc[:, 0]) == case.ids


@pytest.mark.parametrize("case", FILE_CASES, ids=case_id)
def test_upload_through_the_api(app, case):
    response = post_predict(configured(app, case), case)
    if response.status_code != 200 or 200 not in case.status:
        assert_error(response, case)
        return
    body = assert_accepted(response, case)
    predictions = body["predictions"]
    if case.ids:
        assert tuple(p["id"] for p in predictions) == case.ids
    if case.extra:
        for i, prediction in enumerate(predictions):
            assert prediction.get("extra") == {k: v[i] for k, v in case.extra.items()}, prediction
    if case.frame is not None:
        for i, prediction in enumerate(predictions):
            for top in prediction["top_sensors"]:
                expected = case.frame[top["sensor"]].iloc[i]
                assert top["value"] == pytest.approx(expected), (i, top)


@pytest.mark.parametrize("case", CHECK_CASES, ids=case_id)
def test_what_the_check_accepts_scores(app, case):
    """The check and the predict API agree: a file the check passes never fails to score."""
    client = configured(app, case)
    checked, predicted = post_check(client, case), post_predict(client, case)
    assert (checked.status_code, predicted.status_code != 200) in (
        (200, False), (predicted.status_code, True)), \
        f"check {checked.status_code}, predict {predicted.status_code}: {predicted.data[:300]}"


# ---------------------------------------------------------------- JSON bodies


@pytest.mark.parametrize("case", JSON_CASES, ids=case_id)
def test_json_body_through_the_api(app, case):
    response = post_predict(configured(app, case), case)
    if response.status_code != 200 or 200 not in case.status:
        assert_error(response, case)
        return
    body = assert_accepted(response, case)
    if case.ids:
        assert tuple(p["id"] for p in body["predictions"]) == case.ids


def test_200000_empty_rows_are_refused_with_a_short_message(client):
    body = empty_rows_body()
    assert 0.5e6 < len(body) < 0.7e6
    response = client.post(PREDICT, data=body, content_type="application/json")
    assert response.status_code == 413, response.status_code
    assert len(response.data) < 2048, f"{len(response.data)} bytes"
    answer = response.get_json()
    assert {"error", "message", "problems"} <= set(answer)
    assert len(answer["message"]) < 300 and "200000" in answer["message"].replace(",", "")


def test_200000_empty_rows_are_refused_before_any_large_array_is_built(client):
    """The row limit is checked before the (rows x 590) matrix exists: bounded allocation."""
    body = empty_rows_body()
    tracemalloc.start()
    try:
        response = client.post(PREDICT, data=body, content_type="application/json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 413
    assert peak < 128 * 2**20, f"peak {peak / 2**20:.0f} MiB allocated to refuse 0.6 MB"


def test_the_corpus_covers_every_case_of_the_issue():
    """A guard against the corpus losing a case: the issue's list, by case name."""
    names = {c.name for c in FILE_CASES + JSON_CASES}
    required = {
        "csv_cell_inf", "csv_cell_minus_inf", "csv_cell_Infinity", "csv_cell_1e39",
        "csv_cell_float32_edge", "csv_nan_usual_spellings_are_missing", "json_1e400",
        "json_deep_instances", "json_model_list", "json_model_object", "json_model_number",
        "json_model_true", "json_threshold_true", "json_threshold_text", "json_threshold_list",
        "json_threshold_object", "json_threshold_NaN", "json_threshold_1e400",
        "json_threshold_minus_5", "json_threshold_above_1", "json_cell_true",
        "invalid_json_truncated", "empty_body_json", "empty_file", "png_renamed_csv",
        "too_many_rows", "400_sensor_columns", "semicolon_bad_cell", "duplicate_ids",
        "ids_kept_as_text", "no_id_column", "extra_columns", "semicolon_decimal_comma",
        "tab_delimited", "xlsx_ok"}
    assert required <= names, required - names
    assert len(names) == len(FILE_CASES + JSON_CASES), "case names must be unique"
    assert json.loads(empty_rows_body(3)) == {"instances": [[], [], []]}

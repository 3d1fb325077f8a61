"""Ids holding a line break (CR, LF, CRLF) before a formula, in every CSV the app writes.

Through the real predict APIs (a sensor file, wafer-map names, time-series machines), then the
results CSV, History's re-download and the events CSV: the csv module reads every row whole,
pandas (which History uses to re-read the stored CSV) counts the same rows, a reader that
breaks rows at a CR (or at any line break) never starts one with a live formula, and History
gives back the first download's rows and columns.
"""
from __future__ import annotations

import csv
import io
import re

import pandas as pd

from pipelines.core.problems import is_number_text
from pipelines.timeseries.examples import synthetic_history
from tests.conftest import make_batch_frame
from tests.wafermap.test_api import grid
from webapp import db
from webapp.downloads import FORMULA_TRIGGERS, ChunkedCsv, csv_bytes, neutralise
from webapp.predictors import get_predictor

IDS = ["W1\r=cmd", "W2\n=cmd", "W3\r\n=cmd", "W4", "-5", "=A1\r-B2", "\r@x"]
SAFE = ["W1\r'=cmd", "W2\n'=cmd", "W3\r\n'=cmd", "W4", "-5", "'=A1\r'-B2", "'\r'@x"]


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def assert_no_line_starts_a_formula(text: str) -> None:
    """Split as a naive reader would, at CR and at any line break: the first cell of each
    line (a quote around it taken off) is no formula; a number may start with - or +."""
    for breaks in ("\r", "\r\n"):
        for line in re.split(f"[{breaks}]", text):
            first = line.split(",", 1)[0].strip('"')
            assert not first.startswith(FORMULA_TRIGGERS) or is_number_text(first), \
                (breaks, line[:80])


def check_csv(data: bytes, column: str, ids: list[str]) -> list[list[str]]:
    """The rows of a results CSV whose ``column`` must hold ``ids`` (formula-safe), in order."""
    rows = rows_of(data)
    header, body = rows[0], rows[1:]
    assert len(body) == len(ids), [r[:2] for r in body]
    assert all(len(row) == len(header) for row in body)
    assert [row[header.index(column)] for row in body] == ids
    assert len(pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)) == len(ids)
    assert_no_line_starts_a_formula(data.decode())
    return rows


def check_history(client, app, first: list[list[str]]) -> None:
    """History's re-download of the latest run: the first download's rows and columns."""
    with app.app_context():
        run_id = db.recent_runs(1)[0]["id"]
    again = client.get(f"/runs/{run_id}/results.csv")
    assert again.status_code == 200
    assert rows_of(again.data) == first
    assert_no_line_starts_a_formula(again.get_data(as_text=True))


def test_the_guard_covers_every_line_of_a_cell():
    assert [neutralise(i) for i in IDS] == SAFE
    assert neutralise("-3\r") == "-3\r"  # a number, line break or not, is left alone
    frame = pd.DataFrame({"id": IDS, "score": range(len(IDS))})
    assert csv_bytes(frame).decode().startswith('"id","score"\n"W1\r\'=cmd",0\n')  # quoted
    assert rows_of(csv_bytes(frame))[1:] == [[s, str(k)] for k, s in enumerate(SAFE)]


def test_a_piece_with_a_carriage_return_is_quoted_when_others_are_not():
    frame = pd.DataFrame({"id": ["A", "B", *IDS], "score": range(len(IDS) + 2)})
    writer = ChunkedCsv()
    for start in range(0, len(frame), 2):  # the first piece holds no CR, later ones do
        writer.add(frame.iloc[start:start + 2])
    assert writer.data().startswith(b"id,score\nA,0\nB,1\n")
    check_csv(writer.data(), "id", ["A", "B", *SAFE])


def test_sensor_ids_with_line_breaks(client, app):
    frame = make_batch_frame(len(IDS))
    frame["Wafer"] = IDS
    data = frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode()  # ids quoted
    response = client.post("/api/v1/sensor/predict?format=csv",
                           data={"file": (io.BytesIO(data), "ids.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    check_history(client, app, check_csv(response.data, "id", SAFE))


def test_the_sensor_checks_normalised_copy_keeps_each_row_whole_and_its_ids_as_written(client):
    """Not a download: the page's editable copy of a file that needed normalising (semicolons,
    decimal commas), so the ids stay exactly as written, and each row stays whole."""
    frame = make_batch_frame(len(IDS))
    frame["Wafer"] = IDS
    data = frame.to_csv(index=False, sep=";", decimal=",", quoting=csv.QUOTE_NONNUMERIC)
    response = client.post("/sensor/check", data={"file": (io.BytesIO(data.encode()), "ids.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    rows = rows_of(response.get_json()["csv"].encode())
    assert [row[0] if row else "" for row in rows] == ["Wafer", *IDS]
    assert {len(row) for row in rows} == {len(frame.columns)}


def test_wafer_map_names_with_line_breaks(client, app):
    maps = [grid(i).tolist() for i in range(len(IDS))]
    response = client.post("/api/v1/wafermap/predict?format=csv",
                           json={"maps": maps, "names": IDS})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    check_history(client, app, check_csv(response.data, "name", SAFE))


def test_machine_ids_with_line_breaks_in_results_and_events(client, app):
    machines = IDS[:3]
    with app.app_context():
        scaler = get_predictor("timeseries").scaler
    history = synthetic_history(scaler, len(machines), seed=2, min_cycles=60, max_cycles=60,
                                ids=machines)
    frame = pd.DataFrame(history["values"], columns=history["sensors"])
    frame.insert(0, "cycle", history["cycle"])
    frame.insert(0, "machine_id", history["machine"])
    data = frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode()
    response = client.post("/api/v1/timeseries/predict?format=csv",
                           data={"file": (io.BytesIO(data), "history.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    safe = dict(zip(IDS, SAFE))
    check_history(client, app, check_csv(response.data, "machine_id",
                                         [safe[m] for m in history["machine"]]))

    events = client.get("/api/v1/events?limit=1000").get_json()["events"]
    assert {e["machine_id"] for e in events} == set(machines)  # every machine wore out
    download = client.get("/api/v1/events?format=csv")
    assert download.status_code == 200
    check_csv(download.data, "machine_id", [safe[e["machine_id"]] for e in events])


def test_small_frames_cell_by_cell_equal_the_vectorised_pass():
    """The one-by-one path for small frames (most answers are a few rows) must write what the
    vectorised pass writes, cell for cell, with the same quoting."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pipelines.core.csvout import _prepared

    cells = st.one_of(st.none(), st.text(alphabet="=+-@\t\r\n 0123456789.eEabc'\"", max_size=8))

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(cells, cells), min_size=1, max_size=12))
    def check(rows):
        frame = pd.DataFrame(rows, columns=["id\r=x", "name"])
        frame["score"] = range(len(frame))
        for guard in (True, False):
            small, small_cr = _prepared(frame, guard)
            vector, vector_cr = _prepared(frame, guard, small=0)
            assert small_cr == vector_cr
            assert small.to_csv(index=False) == vector.to_csv(index=False)

    check()

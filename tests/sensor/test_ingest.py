"""Loaders and batch validation: tiny frames for each rule, then the real files."""
from __future__ import annotations

import gzip
import io
import shutil

import numpy as np
import pandas as pd
import pytest

from pipelines.core.problems import SchemaError, coerce_numeric
from pipelines.sensor.ingest.batches import (batch_files, check_file_name, load_sensor_fault,
                                             validate_batch_files)
from pipelines.sensor.ingest.secom import load_secom
from pipelines.sensor.ingest.instances import table_from_instances
from pipelines.sensor.ingest.table import (open_sensor_file, parse_chunk, parse_sensor_frame,
                                           read_sensor_csv,
                                           sniff_dialect)
from pipelines.sensor.schema import SENSOR_COLUMNS
from tests.conftest import make_batch_frame, to_csv_bytes


# -- tiny frames ------------------------------------------------------------------------
def test_coerce_numeric_reports_each_bad_cell_and_keeps_blanks_missing():
    frame = pd.DataFrame({"a": ["1", "", "x"], "b": [1.0, np.nan, 2.0]})
    values, problems = coerce_numeric(frame, "f.csv")
    assert np.isnan(values[1, 0]) and np.isnan(values[1, 1]) and values[0, 0] == 1.0
    assert [p.to_dict() for p in problems] == [
        {"message": "'x' is not a number", "file": "f.csv", "row": 3, "column": "a"}]


def test_batch_layout_maps_by_position_and_reads_labels():
    frame = make_batch_frame(6, labels=True)
    table = parse_sensor_frame(frame, "t.csv")
    assert table.values.shape == (6, 590)
    assert table.ids[0] == "W-1" and table.id_column == "Wafer" and table.layout == "batch"
    assert table.labels.tolist() == [1, 0, 0, 1, 0, 0]


def test_secom_layout_maps_to_the_same_schema():
    frame = make_batch_frame(3)
    secom = frame.rename(columns={"Wafer": "Time", **{c: str(i) for i, c in
                                                      enumerate(SENSOR_COLUMNS)}})
    secom["Pass/Fail"] = [-1, 1, -1]
    table = parse_sensor_frame(secom, "s.csv")
    assert table.layout == "secom" and table.id_column == "Time"
    np.testing.assert_array_equal(table.values, frame[SENSOR_COLUMNS].to_numpy())
    assert table.labels.tolist() == [0, 1, 0]


@pytest.mark.parametrize("mutate,needle", [
    (lambda f: f.drop(columns="Sensor-5"), "missing Sensor-5"),
    (lambda f: f.drop(columns=[f"Sensor-{i}" for i in range(401, 591)]),
     "found 400; missing Sensor-401..Sensor-590"),
    (lambda f: f.rename(columns={"Sensor-7": "Sensor-6"}), "repeats column 'Sensor-6'"),
    (lambda f: f.assign(Wafer=["W1", None, "W3"]), "the wafer id is empty"),
    (lambda f: f.iloc[:0], "no data rows"),
])
def test_parse_rejects_with_a_located_reason(mutate, needle):
    with pytest.raises(SchemaError) as err:
        parse_sensor_frame(mutate(make_batch_frame(3)), "x.csv")
    assert needle in str(err.value)


def test_labels_must_be_plus_or_minus_one():
    frame = make_batch_frame(3, labels=True)
    frame.loc[1, "Good/Bad"] = 0
    with pytest.raises(SchemaError) as err:
        parse_sensor_frame(frame, "x.csv")
    assert err.value.problems[0].row == 2 and err.value.problems[0].column == "Good/Bad"


def test_read_sensor_csv_from_bytes_and_empty_file():
    table = read_sensor_csv(to_csv_bytes(make_batch_frame(2)), file="b.csv")
    assert len(table) == 2
    with pytest.raises(SchemaError, match="empty"):
        read_sensor_csv(b"", file="e.csv")


def test_instances_lists_dicts_and_errors():
    table = table_from_instances([[1.0] * 590, {"Sensor-3": 2.5}], ids=["a", "b"])
    assert table.ids == ["a", "b"] and table.values[1, 2] == 2.5
    assert np.isnan(table.values[1, 0]) and table.n_missing == 589
    with pytest.raises(SchemaError) as err:
        table_from_instances([[1.0] * 3, {"Sensor-0": 1}, "x"])
    assert [p.path for p in err.value.problems] == ["instances[0]", "instances[1]", "instances[2]"]


@pytest.mark.parametrize("cell,path", [(True, "instances[1][4]"), ("1.5", "instances[1][4]"),
                                       (float("inf"), "instances[1][4]"), (1e39, "instances[1][4]"),
                                       (10**400, "instances[1][4]")])
def test_instances_name_the_json_path_of_a_bad_cell(cell, path):
    rows = [[1.0] * 590, [2.0] * 590]
    rows[1][4] = cell
    with pytest.raises(SchemaError) as err:
        table_from_instances(rows)
    assert err.value.problems[0].path == path and err.value.problems[0].column == "Sensor-5"


def test_instances_fast_path_keeps_values_and_nulls():
    rows = np.random.default_rng(0).normal(size=(30, 590)).tolist()
    rows[3][7] = None
    rows[4][8] = 5  # an int
    table = table_from_instances(rows)
    assert np.isnan(table.values[3, 7]) and table.values[4, 8] == 5.0
    assert table.values[0, 0] == rows[0][0]


def test_file_without_id_column_numbers_rows_and_carries_extra_columns_as_text():
    frame = make_batch_frame(3).drop(columns="Wafer")
    frame.insert(0, "lot", ["007", "L-2", "=cmd"])
    frame["recipe"] = ["1.10", "R2", ""]
    table = read_sensor_csv(to_csv_bytes(frame), file="x.csv")
    assert table.ids == ["1", "2", "3"] and table.id_column == "row"
    assert table.extra["lot"].tolist() == ["007", "L-2", "=cmd"]
    assert table.extra["recipe"].tolist()[:2] == ["1.10", "R2"]
    np.testing.assert_array_equal(table.values, frame[SENSOR_COLUMNS].to_numpy())


def test_ids_are_text_exactly_as_written():
    frame = make_batch_frame(3)
    frame["Wafer"] = ["007", "0008", "1.10"]
    assert read_sensor_csv(to_csv_bytes(frame), file="x.csv").ids == ["007", "0008", "1.10"]


def test_chunks_read_text_columns_exactly_as_dtype_str_does():
    """Chunks are read with str converters, not a dtype mapping, and ids and extras come out
    as ``dtype=str`` gives them: numbers, bools and NA cells as written, and a column whose
    cells are all empty in a chunk as missing text."""
    frame = make_batch_frame(9)
    frame["Wafer"] = ["W-1", "W-2", "W-3", "007", "8", " 9 ", "W-7", "W-8", "W-9"]
    frame.insert(1, "lot", ["L1", "", "L3", "True", "False", "true", "", "", ""])
    frame["recipe"] = ["1.10", "R2", "NA", "x", "y", "z", "-1", "2", "3e5"]
    data = to_csv_bytes(frame)
    opened = open_sensor_file(io.BytesIO(data), "t.csv", chunk_rows=3)
    text = {c: str for c in opened.layout.text_columns()}
    expected = [parse_chunk(f.reset_index(drop=True), opened.layout, "t.csv", 1 + 3 * k)
                for k, f in enumerate(pd.read_csv(io.BytesIO(data), dtype=text, chunksize=3))]
    tables = list(opened.chunks)
    assert [t.ids for t in tables] == [["W-1", "W-2", "W-3"], ["007", "8", " 9 "],
                                       ["W-7", "W-8", "W-9"]]
    assert tables[2].extra["lot"].tolist() == [None, None, None]
    assert tables[2].extra["recipe"].tolist() == ["-1", "2", "3e5"]
    assert len(tables) == len(expected)
    for got, want in zip(tables, expected):
        assert got.ids == want.ids and got.first_row == want.first_row
        pd.testing.assert_frame_equal(got.extra, want.extra)
        np.testing.assert_array_equal(got.values, want.values)


@pytest.mark.parametrize("sep,decimal,name", [(";", ",", "semicolon"), ("\t", ".", "tab"),
                                              (";", ".", "semicolon"), (",", ".", "comma")])
def test_dialects_are_sniffed_and_read_the_same(sep, decimal, name):
    frame = make_batch_frame(4)
    data = frame.to_csv(index=False, sep=sep, decimal=decimal).encode()
    opened = open_sensor_file(io.BytesIO(data), "d.csv", chunk_rows=3)
    assert opened.detected.delimiter_name == name and opened.detected.decimal == decimal
    assert opened.detected.delimiter == sep.replace("\\t", "\t")
    tables = list(opened.chunks)
    assert [t.first_row for t in tables] == [1, 4]
    np.testing.assert_allclose(np.vstack([t.values for t in tables]),
                               frame[SENSOR_COLUMNS].to_numpy())


def test_bad_cell_in_a_later_chunk_names_its_file_row():
    frame = make_batch_frame(7).astype({"Sensor-3": object})
    frame.loc[5, "Sensor-3"] = "oops"
    opened = open_sensor_file(io.BytesIO(to_csv_bytes(frame)), "c.csv", chunk_rows=2)
    with pytest.raises(SchemaError) as err:
        list(opened.chunks)
    assert err.value.problems[0].row == 6 and err.value.problems[0].column == "Sensor-3"


@pytest.mark.parametrize("text", ["inf", "-Infinity", "1e39", "-3.5e38"])
def test_non_finite_and_beyond_float32_cells_are_refused(text):
    frame = make_batch_frame(3).astype({"Sensor-9": object})
    frame.loc[1, "Sensor-9"] = text
    with pytest.raises(SchemaError) as err:
        read_sensor_csv(to_csv_bytes(frame), file="f.csv")
    problem = err.value.problems[0]
    assert (problem.row, problem.column) == (2, "Sensor-9") and "finite" in problem.message


def test_row_limit_is_a_limit_error():
    from pipelines.core.problems import LimitError
    with pytest.raises(LimitError):
        read_sensor_csv(to_csv_bytes(make_batch_frame(5)), file="r.csv", max_rows=4)
    with pytest.raises(LimitError):
        table_from_instances([[]] * 10, max_rows=4)


def test_xlsx_reads_like_csv(tmp_path):
    frame = make_batch_frame(3, labels=True)
    frame["Wafer"] = ["007", "W2", "W3"]
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False)
    table = read_sensor_csv(buffer.getvalue(), file="w.xlsx")
    assert table.ids == ["007", "W2", "W3"] and table.labels.tolist() == [1, 0, 0]
    np.testing.assert_allclose(table.values, frame[SENSOR_COLUMNS].to_numpy())


def test_sniffer_prefers_the_header_delimiter():
    assert sniff_dialect(b"a;b;c\n1,5;2;3\n4;5;6\n").delimiter == ";"
    assert sniff_dialect(b"a;b;c\n1,5;2;3\n4;5;6\n").decimal == ","
    assert sniff_dialect(b"a,b\n1,2\n").decimal == "."


@pytest.mark.parametrize("name,ok", [
    ("wafer_07012020_041011.csv", True), ("wafer_07012020_041011.csv.gz", True),
    ("Wafer12_20012.csv", False), ("Wafer_15010_130532.csv", False),
    ("wafer_32012020_041011.csv", False), ("Wafer_07012020_000000.csv", False),
])
def test_file_name_rule(name, ok):
    assert (check_file_name(name) == []) is ok


def test_empty_column_is_rejected_unless_sparse(tmp_path):
    good = make_batch_frame(4, labels=True)
    broken = good.copy()
    broken["Sensor-9"] = np.nan
    files = [("wafer_01012020_000001.csv", good), ("wafer_01012020_000002.csv", broken),
             ("wafer_01012020_000003.csv", good)]  # Sensor-9 is missing in 1/3 of rows
    for name, frame in files:
        frame.to_csv(tmp_path / name, index=False)
    reports, frames = validate_batch_files(batch_files(tmp_path), with_labels=True)
    verdict = {r.file: r for r in reports}
    assert verdict["wafer_01012020_000001.csv"].accepted
    assert "Sensor-9" in verdict["wafer_01012020_000002.csv"].problems[0].message
    assert sorted(frames) == ["wafer_01012020_000001.csv", "wafer_01012020_000003.csv"]
    reports, _ = validate_batch_files(batch_files(tmp_path), with_labels=True,
                                      optional_empty=["Sensor-9"])
    assert all(r.accepted for r in reports)


# -- real files ----------------------------------------------------------------------------
# Every deliberately malformed file of ../shared/data/sensor_fault and the reason it must get.
TRAINING_REJECTS = {
    "Wafer12_20012.csv.gz": ["file name", "expected 592 columns"],
    "Wafer_12012020_111.csv.gz": ["file name", "expected 592 columns"],
    "Wafer_15010_130532.csv.gz": ["file name", "expected 592 columns"],
    "Wafer_fault_detection.csv.gz": ["file name", "expected 592 columns"],
    "Wafer_text_130532.csv.gz": ["file name", "expected 592 columns"],
    "Waferdefault_15010_130532.csv.gz": ["file name", "expected 592 columns"],
    "Wafer_23012020_163456.csv.gz": ["file name", "expected 592 columns", "found 563"],
    "wafer_16012020_134553.csv.gz": ["expected 592 columns", "found 591"],
    "wafer_17012020_125434.csv.gz": ["expected 592 columns", "found 591"],
}
PREDICTION_REJECTS = {
    "Wafer_15010_130532.csv.gz": ["file name"],
    "Wafer_13012020_141000.csv.gz": ["file name"],
    "Wafer_14012020_113045.csv.gz": ["file name"],
}


def _reasons(report) -> str:
    return " | ".join(p.text() for p in report.problems)


def test_training_batches_each_bad_file_caught_with_its_reason(data_dir):
    folder = data_dir / "sensor_fault" / "Training_Batch_Files"
    reports, frames = validate_batch_files(batch_files(folder), with_labels=True)
    by_file = {r.file: r for r in reports}
    assert len(reports) == 41
    accepted = sorted(r.file for r in reports if r.accepted)
    assert len(accepted) == 16 and all(f.startswith("wafer_") for f in accepted)
    assert sum(r.rows for r in reports if r.accepted) == 1537
    for name, needles in TRAINING_REJECTS.items():
        for needle in needles:
            assert needle in _reasons(by_file[name]), (name, _reasons(by_file[name]))
    # capitalised names break the schema's naming rule; their 591 columns lack Good/Bad
    for name, report in by_file.items():
        if name.startswith("Wafer_") and name not in TRAINING_REJECTS:
            assert not report.accepted and "file name" in _reasons(report), name


def test_prediction_batches_content_errors(data_dir, tmp_path):
    folder = data_dir / "sensor_fault" / "Prediction_Batch_files"
    reports, _ = validate_batch_files(batch_files(folder), with_labels=False)
    by_file = {r.file: r for r in reports}
    assert len(reports) == 19
    for name, needles in PREDICTION_REJECTS.items():
        for needle in needles:
            assert needle in _reasons(by_file[name])
    assert sorted(r.file for r in reports if not r.accepted) == sorted(PREDICTION_REJECTS)


def test_content_rules_on_the_real_malformed_training_files(data_dir, tmp_path):
    """Renamed to a valid name, these two still fail on their content."""
    folder = data_dir / "sensor_fault" / "Training_Batch_Files"
    for src, dst in [("Wafer_24012020_150121.csv.gz", "wafer_24012020_150121.csv.gz"),
                     ("Wafer_25012020_142112.csv.gz", "wafer_25012020_142112.csv.gz"),
                     ("wafer_13012020_090817.csv.gz", "wafer_13012020_090817.csv.gz")]:
        shutil.copy(folder / src, tmp_path / dst)
    reports, _ = validate_batch_files(batch_files(tmp_path), with_labels=False)
    by_file = {r.file: _reasons(r) for r in reports}
    assert "expected 591 columns" in by_file["wafer_13012020_090817.csv.gz"]  # has Good/Bad
    assert "named ''" in by_file["wafer_24012020_150121.csv.gz"]
    assert "entirely empty" in by_file["wafer_24012020_150121.csv.gz"]
    assert "'21-01-1998' is not a number" in by_file["wafer_25012020_142112.csv.gz"]
    assert "row 1, column Sensor-332" in by_file["wafer_25012020_142112.csv.gz"]
    assert "column Sensor-576: 'invalid' is not a number" in by_file["wafer_25012020_142112.csv.gz"]


def test_load_sensor_fault_labelled(data_dir):
    table, reports = load_sensor_fault(data_dir / "sensor_fault")
    assert len(table) == 1537 and int(table.labels.sum()) == 89
    assert len(set(table.ids)) == 1537


def test_load_secom_csv_with_real_timestamps(data_dir):
    table = load_secom(data_dir / "secom")
    assert table.values.shape == (1567, 590)
    assert int(table.labels.sum()) == 104 and table.n_missing == 41951
    assert table.times.is_monotonic_increasing  # from secom_labels.data, day-first
    assert table.ids[0] == "2008-07-19 11:55:00"


def test_load_secom_original_layout(data_dir, tmp_path):
    """secom.data (space-separated, NaN) + secom_labels.data, generated from the CSV."""
    csv = pd.read_csv(data_dir / "secom" / "uci-secom.csv.gz", nrows=1567)
    csv.iloc[:, 1:591].to_csv(tmp_path / "secom.data", sep=" ", header=False, index=False,
                              na_rep="NaN")
    shutil.copy(data_dir / "secom" / "secom_labels.data", tmp_path / "secom_labels.data")
    table = load_secom(tmp_path)
    reference = load_secom(data_dir / "secom")
    np.testing.assert_allclose(table.values, reference.values, equal_nan=True)
    np.testing.assert_array_equal(table.labels, reference.labels)
    assert table.ids[0] == "2008-07-19 11:55:00"


def test_validate_command_reports_every_file(data_dir):
    import subprocess
    import sys

    from tests.conftest import ROOT
    out = subprocess.run([sys.executable, "-m", "pipelines.validate",
                          str(data_dir / "sensor_fault" / "Prediction_Batch_files"), "--prediction"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = __import__("json").loads(out.stdout)
    assert (doc["files"], doc["accepted"], doc["rejected"]) == (19, 16, 3)
    rejected = {r["file"]: r["reasons"] for r in doc["reports"] if not r["accepted"]}
    assert all("file name" in " ".join(reasons) for reasons in rejected.values())

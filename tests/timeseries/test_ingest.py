"""Reading histories: the C-MAPSS layout (plain and gzipped), RUL files, generic CSVs, and
every refused input located by file, row and column."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from pipelines.core.problems import LimitError, SchemaError
from pipelines.timeseries.evaluate import pseudo_test
from pipelines.timeseries.examples import synthetic_cmapss
from pipelines.timeseries.ingest import (read_cmapss, read_csv_series, read_rul, read_series,
                                         rul_per_row, write_cmapss)


@pytest.fixture
def cmapss_file(tmp_path):
    d = synthetic_cmapss(3, seed=1)
    path = tmp_path / "train_FD00x.txt"
    write_cmapss(path, d["unit"], d["cycle"], d["settings"], d["sensors"])
    return path, d


def test_cmapss_layout_plain_and_gzipped(cmapss_file, tmp_path):
    path, d = cmapss_file
    plain = read_cmapss(path)
    zipped = tmp_path / "train.txt.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    packed = read_series(zipped)
    assert plain.layout == packed.layout == "cmapss"
    assert plain.values.shape == (len(d["unit"]), 21)
    np.testing.assert_allclose(plain.values, packed.values)
    np.testing.assert_allclose(plain.values, d["sensors"], atol=1e-4)
    assert plain.machine_ids() == ["1", "2", "3"]


def test_rul_per_row_and_the_rul_file(cmapss_file, tmp_path):
    path, d = cmapss_file
    series = read_cmapss(path)
    rul = rul_per_row(series)
    first = series.groups()[0][1]
    assert rul[first[-1]] == 0 and rul[first[0]] == len(first) - 1
    (tmp_path / "RUL.txt").write_text("10\n 20 \n5\n")
    last = read_rul(tmp_path / "RUL.txt")
    assert last.tolist() == [10, 20, 5]
    assert rul_per_row(series, last)[first[-1]] == 10
    with pytest.raises(SchemaError, match="2 RUL values for 3 engines"):
        rul_per_row(series, last[:2])
    (tmp_path / "bad.txt").write_text("10\n-3\n")
    with pytest.raises(SchemaError, match="row 2.*not a non-negative number"):
        read_rul(tmp_path / "bad.txt")


def test_wrong_column_count_is_located(cmapss_file):
    path, _ = cmapss_file
    lines = path.read_text().splitlines()
    lines[3] = " ".join(lines[3].split()[:20])
    with pytest.raises(SchemaError, match=r"row 4: 20 columns; the C-MAPSS layout has 26"):
        read_cmapss("\n".join(lines).encode(), "t.txt")


def test_cycles_going_backwards_are_refused(cmapss_file):
    path, _ = cmapss_file
    lines = path.read_text().splitlines()
    lines[4], lines[5] = lines[5], lines[4]
    with pytest.raises(SchemaError, match=r"t.txt, row 6, column cycle: machine 1: cycle 5 does "
                                          r"not come after 6"):
        read_cmapss("\n".join(lines).encode(), "t.txt")


def test_generic_csv_with_free_names_and_dates():
    text = ("asset,when,temp,pressure\n"
            "A,2026-01-01T00:00,1.5,3\nA,2026-01-02T00:00,1.6,3.1\nB,2026-01-01,2,4\n"
            "B,2026-01-03,2.2,4.2\n")
    series = read_csv_series(text.encode(), "plant.csv")
    assert (series.machine_column, series.time_column) == ("asset", "when")
    assert series.sensors == ["temp", "pressure"] and series.timestamps is not None
    assert series.cycles.tolist() == [1, 2, 1, 2]
    chosen = read_csv_series(text.encode(), "plant.csv", machine_column="asset",
                             time_column="when", sensors=["temp"])
    assert chosen.sensors == ["temp"]
    with pytest.raises(SchemaError, match="no machine column 'unit'"):
        read_csv_series(text.encode(), "plant.csv", machine_column="unit")


@pytest.mark.parametrize("body, needle", [
    ("m,cycle,s1\nA,1,1\nA,2,\n", "row 2, column s1: missing value"),
    ("m,cycle,s1\nA,1,1\nA,2,abc\n", "row 2, column s1: 'abc' is not a number"),
    ("m,cycle,s1\nA,1,1\nA,1,2\n", "cycle 1 does not come after 1"),
    ("m,cycle,s1\nA,1,1\nA,2,1e999\n", "not a finite number"),
    ("m,cycle\nA,1\n", "2 columns"),
    ("m,cycle,s1\n", "header but no rows"),
])
def test_bad_csv_cells_are_located(body, needle):
    with pytest.raises(SchemaError, match=needle):
        read_csv_series(body.encode(), "x.csv")


def test_row_limit_is_checked_before_parsing():
    body = "m,cycle,s1\n" + "".join(f"A,{i},1\n" for i in range(1, 60))
    with pytest.raises(LimitError, match="at most 50 rows"):
        read_csv_series(body.encode(), "x.csv", max_rows=50)


def test_pseudo_test_cuts_engines_like_the_official_test_set(cmapss_file):
    path, _ = cmapss_file
    series = read_cmapss(path)
    cut, last_rul = pseudo_test(series, ["1", "3"], seed=2)
    assert cut.machine_ids() == ["1", "3"] and len(last_rul) == 2
    for (machine, rows), rul in zip(cut.groups(), last_rul):
        full = dict(series.groups())[machine]
        assert len(rows) + rul == len(full) and rul >= 5

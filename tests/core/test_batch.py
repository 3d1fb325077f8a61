"""Batch scoring on Dask (issue 18): a real ``dask scheduler`` and ``dask worker`` processes
(the distributed package's command line) on loopback score partitioned real files, and every
row equals what the in-process predictor gives the same data.

One scheduler and one worker process with two worker processes inside (``--nworkers 2``)
serve every test of this file; each test writes a small slice of a real data set into a few
parts under ``tmp_path`` (never into the repository).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.core import locations
from pipelines.core.batch import BatchError, score
from pipelines.core.problems import SchemaError
from tests.dask_cluster import scheduler  # noqa: F401 (the fixture)

ROOT = Path(__file__).resolve().parents[2]


def _artifacts() -> Path:
    return locations.artifacts_dir(os.environ)


def _parts(output: Path, summary: dict) -> pd.DataFrame:
    """Every results file of a run, in partition order (text columns as text)."""
    frames = [pd.read_csv(output / f, dtype=str, keep_default_na=False)
              for f in summary["files"]]
    return pd.concat(frames, ignore_index=True)


def _summary_checks(summary: dict, output: Path, items: int, parts: int) -> None:
    assert json.loads((output / "summary.json").read_text()) == summary
    assert summary["items"] == items
    assert summary["partitions"] == parts
    assert summary["workers"] == 2
    assert summary["release_version"]
    assert sorted(p.name for p in output.glob("part-*")) == summary["files"]


# -- sensor: batch files of the wafer sensor-fault data set ---------------------------------------
def test_sensor_batch_files_equal_the_in_process_predictor(scheduler, data_dir, tmp_path):
    from pipelines.sensor.ingest.table import read_sensor_csv
    from pipelines.sensor.predict import SensorPredictor

    source = sorted((data_dir / "sensor_fault" / "Training_Batch_Files").glob("Wafer_0*.csv.gz"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    # two gzipped batch files as they are, and one plain copy cut into three 100 kB blocks
    for f in source[:2]:
        (inputs / f.name).write_bytes(f.read_bytes())
    plain = inputs / source[2].name.removesuffix(".gz")
    plain.write_bytes(gzip.decompress(source[2].read_bytes()))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.score", "sensor", "--input", str(inputs),
               "--output", str(output), "--scheduler", scheduler,
               "--partition-size", str(100_000)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    files = sorted(inputs.iterdir())
    predictor = SensorPredictor(_artifacts() / "sensor", n_jobs=1)
    expected = [predictor.predict(read_sensor_csv(f)) for f in files]
    n = sum(len(e) for e in expected)
    assert summary["partitions"] > len(files)  # the plain file was cut into blocks
    _summary_checks(summary, output, n, summary["partitions"])
    assert summary["flagged"] == sum(int(e["is_fault"].sum()) for e in expected)
    got = _parts(output, summary)
    want = pd.concat(expected, ignore_index=True)
    assert got["id"].tolist() == want["id"].tolist()
    assert got["source_file"].tolist() == [f.name for f, e in zip(files, expected)
                                           for _ in range(len(e))]
    np.testing.assert_array_equal(got["fault_score"].astype(float), want["fault_score"])
    assert (got["is_fault"] == "True").tolist() == want["is_fault"].tolist()
    assert got["top_sensor_1"].tolist() == want["top_sensor_1"].tolist()
    np.testing.assert_array_equal(got["top_sensor_1_contribution"].astype(float),
                                  want["top_sensor_1_contribution"])


def test_sensor_parquet_files_equal_the_in_process_predictor(scheduler, data_dir, tmp_path):
    from pipelines.sensor.ingest.table import read_sensor_csv
    from pipelines.sensor.predict import SensorPredictor

    source = sorted((data_dir / "sensor_fault" / "Training_Batch_Files").glob("Wafer_0*.csv.gz"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for f in source[:2]:
        pd.read_csv(f).to_parquet(inputs / f.name.replace(".csv.gz", ".parquet"), index=False)
    summary = score("sensor", inputs, tmp_path / "out", scheduler=scheduler, fmt="parquet")
    predictor = SensorPredictor(_artifacts() / "sensor", n_jobs=1)
    want = pd.concat([predictor.predict(read_sensor_csv(f)) for f in source[:2]],
                     ignore_index=True)
    _summary_checks(summary, tmp_path / "out", len(want), 2)
    got = pd.concat([pd.read_parquet(tmp_path / "out" / f) for f in summary["files"]],
                    ignore_index=True)
    assert got["id"].tolist() == want["id"].tolist()
    np.testing.assert_array_equal(got["fault_score"], want["fault_score"])
    assert got["is_fault"].tolist() == want["is_fault"].tolist()


def test_sensor_bad_cell_is_located_and_output_is_not_reused(scheduler, data_dir, tmp_path):
    source = sorted((data_dir / "sensor_fault" / "Training_Batch_Files").glob("Wafer_0*.csv.gz"))
    frame = pd.read_csv(io.BytesIO(gzip.decompress(source[0].read_bytes())), dtype=str,
                        keep_default_na=False)
    frame.iloc[7, 5] = "12,5kg"
    inputs = tmp_path / "in"
    inputs.mkdir()
    frame.to_csv(inputs / "broken.csv", index=False)
    with pytest.raises(SchemaError) as caught:
        score("sensor", inputs, tmp_path / "out", scheduler=scheduler)
    assert "broken.csv" in str(caught.value) and "12,5kg" in str(caught.value)
    (tmp_path / "out" / "part-00000.csv").write_text("earlier")
    with pytest.raises(BatchError, match="earlier run"):
        score("sensor", inputs, tmp_path / "out", scheduler=scheduler)


# -- wafer maps: a slice of WM-811K written into parts --------------------------------------------
def test_wafermap_npz_parts_equal_the_in_process_predictor(scheduler, data_dir, tmp_path):
    from pipelines.wafermap.ingest import read_npz, write_npz
    from pipelines.wafermap.predict import WafermapPredictor

    maps = read_npz(data_dir / "wm811k" / "wafer_maps_orig.npz", split="val")
    keep = np.arange(0, len(maps), len(maps) // 300)[:300]  # 300 maps of every class
    inputs = tmp_path / "in"
    inputs.mkdir()
    for k in range(3):
        part = keep[k * 100:(k + 1) * 100]
        write_npz(inputs / f"lot{k}.npz", [maps.maps[i] for i in part],
                  maps.labels[part], layout="flat")
    output = tmp_path / "out"
    summary = score("wafermap", inputs, output, scheduler=scheduler, fmt="parquet")
    _summary_checks(summary, output, 300, 3)
    predictor = WafermapPredictor(_artifacts() / "wafermap", n_jobs=1)
    want = predictor.predict([maps.maps[i] for i in keep])
    got = pd.concat([pd.read_parquet(output / f) for f in summary["files"]], ignore_index=True)
    assert got["name"].tolist() == [f"lot{k}.npz#{i + 1}" for k in range(3) for i in range(100)]
    assert got["class"].tolist() == [r["class"] for r in want]
    assert got["label"].tolist() == [str(maps.labels[i]) for i in keep]
    np.testing.assert_allclose(got["confidence"], [r["confidence"] for r in want],
                               rtol=0, atol=1e-6)
    for c in predictor.classes:
        np.testing.assert_allclose(got[f"p_{c}"], [r["probabilities"][c] for r in want],
                                   rtol=0, atol=1e-6)
    assert got["needs_review"].tolist() == [r["needs_review"] for r in want]
    assert summary["flagged"] == sum(r["needs_review"] for r in want)


# -- time series: C-MAPSS train_FD001, machines cut across files ----------------------------------
def test_timeseries_machines_stay_whole_across_files(scheduler, data_dir, tmp_path):
    from pipelines.timeseries.ingest import read_series
    from pipelines.timeseries.predict import TimeseriesPredictor
    from pipelines.timeseries.results import results_frame

    lines = gzip.decompress((data_dir / "cmapss" / "train_FD001.txt.gz").read_bytes()) \
        .decode().splitlines(keepends=True)
    units = np.array([int(line.split()[0]) for line in lines])
    lines = [line for line, u in zip(lines, units) if u <= 12]  # 12 engines, ~2,500 cycles
    inputs = tmp_path / "in"
    inputs.mkdir()
    # four "days" of rows in file order: most engines' histories run across two files
    cuts = np.linspace(0, len(lines), 5).astype(int)
    for k in range(4):
        (inputs / f"day{k + 1}.txt").write_text("".join(lines[cuts[k]:cuts[k + 1]]))
    output = tmp_path / "out"
    summary = score("timeseries", inputs, output, scheduler=scheduler, partitions=3)
    _summary_checks(summary, output, len(lines), 3)
    got = _parts(output, summary)
    # every machine's rows in one partition, in cycle order
    per_file = {f: set(pd.read_csv(output / f, dtype=str)["machine_id"]) for f in summary["files"]}
    machines = [m for ms in per_file.values() for m in ms]
    assert len(machines) == len(set(machines)) == 12
    predictor = TimeseriesPredictor(_artifacts() / "timeseries", n_jobs=1)
    series = read_series("".join(lines).encode(), "FD001-slice.txt")
    want = results_frame(series, predictor.score_series(series))
    key = ["machine_id", "cycle"]
    got["cycle"] = got["cycle"].astype(float)
    got = got.sort_values(key, key=lambda c: c.astype(float), kind="stable") \
        .reset_index(drop=True)
    want = want.sort_values(key, key=lambda c: c.astype(float), kind="stable") \
        .reset_index(drop=True)
    assert got["machine_id"].tolist() == want["machine_id"].astype(str).tolist()
    np.testing.assert_array_equal(got["cycle"], want["cycle"])
    np.testing.assert_allclose(got["score"].astype(float), want["score"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["rul"].astype(float), want["rul"], rtol=0, atol=1e-6)
    assert (got["is_anomaly"] == "True").tolist() == want["is_anomaly"].tolist()
    assert got["top_sensor_1"].tolist() == want["top_sensor_1"].astype(str).tolist()
    assert summary["flagged"] == int(want["is_anomaly"].sum())


# -- inspection: MVTec AD bottle photos -----------------------------------------------------------
def test_inspection_photos_equal_the_in_process_predictor(scheduler, data_dir, tmp_path):
    from pipelines.inspection.ingest import decode_image
    from pipelines.inspection.predict import InspectionPredictor

    test = data_dir / "mvtec" / "bottle" / "test"
    photos = sorted(p for kind in ("good", "broken_large", "contamination")
                    for p in sorted((test / kind).glob("*.png"))[:4])  # scored in path order
    output = tmp_path / "out"
    summary = score("inspection", photos, output, scheduler=scheduler, partition_size=5)
    _summary_checks(summary, output, 12, 3)
    predictor = InspectionPredictor(_artifacts() / "inspection", n_jobs=1)
    names = [p.relative_to(test).as_posix() for p in photos]
    want = predictor.predict([decode_image(p.read_bytes(), n) for p, n in zip(photos, names)])
    got = _parts(output, summary)
    assert got["file"].tolist() == names
    # float32 networks: a photo's score may move by one float32 step (1e-7 relative) with the
    # other photos in its batch (5 here, 12 in one call), as between the web app's chunks
    np.testing.assert_allclose(got["anomaly_score"].astype(float),
                               [r["anomaly_score"] for r in want], rtol=1e-6, atol=0)
    assert (got["is_anomaly"] == "True").tolist() == [r["is_anomaly"] for r in want]
    assert summary["flagged"] == sum(r["is_anomaly"] for r in want)


def test_importing_the_batch_code_loads_no_dask():
    """The jobs queue imports the entry point in the web app's process: Dask only on use."""
    code = ("import sys, pipelines.core.batch, pipelines.score, pipelines.sensor.batch, "
            "pipelines.wafermap.batch, pipelines.timeseries.batch, pipelines.inspection.batch; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

"""Batch-scoring jobs for every module (issue 18): a file sent in parts, or a folder of the
input folder, scored a chunk at a time by the module's own serving code, gives the predict
API's results for the same items; on a Dask scheduler when one is configured.

Chunks are made small here (a few per file) so every test crosses chunk boundaries. The Dask
tests run a real ``dask scheduler`` and ``dask worker`` on loopback (tests/dask_cluster.py).
"""
from __future__ import annotations

import gzip
import io
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.wafermap.ingest import read_npz, write_npz
from tests.conftest import make_batch_frame, to_csv_bytes
from tests.dask_cluster import scheduler  # noqa: F401 (the fixture)
from tests.webapp.test_jobs import jobs_config, submit, upload, wait_for
from webapp import create_app, jobs

ROOT = Path(__file__).resolve().parents[2]


def run_job(app, **body) -> dict:
    """A scoring job run to its end by this process's job worker; the job."""
    client = app.test_client()
    job_id = submit(client, kind="score", **body)
    jobs.start_worker(app)
    try:
        job = wait_for(client, job_id, ("done", "failed", "cancelled"), seconds=180)
    finally:
        jobs.stop_worker(app)
    return job


def predicted_csv(client, module: str, files: list[tuple[str, bytes]], **form) -> bytes:
    """The predict API's results CSV for ``files`` in one request."""
    data = {"file": [(io.BytesIO(b), n) for n, b in files], **form}
    answer = client.post(f"/api/v1/{module}/predict?format=csv", data=data)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]
    return answer.data


def job_csv(client, job: dict) -> bytes:
    assert job["state"] == "done", job
    answer = client.get(job["results_url"])
    assert answer.status_code == 200
    return answer.data


def same_drift(app, job: dict) -> None:
    """The job's run holds the drift of the newest run (the predict API's, same items)."""
    import json

    from sqlalchemy import select

    from webapp.db import runs

    with app.extensions["fablens_db"].connect() as conn:
        found = dict(conn.execute(select(runs.c.id, runs.c.drift).order_by(runs.c.id)).all())
    api = max(found)
    assert api != job["run_id"] and found[job["run_id"]] is not None
    assert json.loads(found[job["run_id"]]) == json.loads(found[api])


def frame(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def val_maps(data_dir):
    """120 real WM-811K validation maps of every class, with their labels."""
    maps = read_npz(data_dir / "wm811k" / "wafer_maps_orig.npz", split="val")
    keep = np.arange(0, len(maps), len(maps) // 120)[:120]
    return [maps.maps[i] for i in keep], [str(maps.labels[i]) for i in keep]


def bottle_photos(data_dir, per_kind: int) -> list[tuple[str, bytes]]:
    """MVTec AD bottle test photos of three kinds, named by their folders, in path order."""
    test = data_dir / "mvtec" / "bottle" / "test"
    return [(f"{kind}/{p.name}", p.read_bytes())
            for kind in ("broken_large", "contamination", "good")
            for p in sorted((test / kind).glob("*.png"))[:per_kind]]


def fd001_slice(data_dir, engines: int) -> list[str]:
    lines = gzip.decompress((data_dir / "cmapss" / "train_FD001.txt.gz").read_bytes()) \
        .decode().splitlines(keepends=True)
    return [line for line in lines if int(line.split()[0]) <= engines]


# -- in the job worker: each module's results equal the predict API's ------------------------------
def test_a_wafer_map_npz_sent_in_parts_scores_like_the_predict_api(tmp_path, val_maps,
                                                                   monkeypatch):
    from webapp.modules.wafermap import batch

    monkeypatch.setattr(batch, "CHUNK_MAPS", 50)  # three chunks: 50, 50, 20
    maps, labels = val_maps
    npz = tmp_path / "lot 7.npz"
    write_npz(npz, maps, labels, layout="flat")
    data = npz.read_bytes()
    app = create_app(jobs_config(tmp_path))
    client = app.test_client()
    upload_id = upload(client, "lot 7.npz", data, part=len(data) // 3 + 1)
    job = run_job(app, module="wafermap", upload=upload_id, threshold=0.8)
    assert job["progress"] | {"stage": None} == {"done": 120, "total": 120, "unit": "maps",
                                                 "stage": None}
    got = job_csv(client, job)
    assert got == predicted_csv(client, "wafermap", [("lot 7.npz", data)], review_level="0.8")
    same_drift(app, job)  # over every map, kept as classes and fail densities
    assert frame(got)["index"].tolist() == [str(k) for k in range(1, 121)]
    assert job["result"]["threshold"] == 0.8
    run = client.get(job["run_url"]).get_data(as_text=True)
    assert f"job {job['id']}: lot 7.npz" in run


def test_a_folder_of_map_files_scores_like_a_zip_of_them(tmp_path, val_maps, monkeypatch):
    """npz, CSV grid (with a label line), JSON and PNG files of the input folder, one of them
    unreadable: left out with its reason, as the predict API leaves it out of a zip."""
    from pipelines.wafermap.ingest import write_npz as npz_of
    from webapp.modules.wafermap import batch
    from webapp.modules.wafermap.views import grid_csv

    monkeypatch.setattr(batch, "CHUNK_MAPS", 7)
    maps, labels = val_maps
    buffer = io.BytesIO()
    npz_of(buffer, maps[:20], labels[:20], layout="flat")
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray((maps[30] * 127).astype(np.uint8)).save(png, format="PNG")
    files = {"a/lot.npz": buffer.getvalue(),
             "a/one.csv": f"label,{labels[21]}\n".encode() + grid_csv([maps[21]]).encode(),
             "b/two.json": str(maps[22].tolist()).encode(),
             "b/three.png": png.getvalue(),
             "c/broken.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40}
    folder = tmp_path / "inputs" / "wafers"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    app = create_app(jobs_config(tmp_path, JOBS_INPUT_DIR=str(tmp_path / "inputs")))
    client = app.test_client()
    job = run_job(app, module="wafermap", input="wafers")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in sorted(files):
            zf.writestr(name, files[name])
    got = job_csv(client, job)
    assert got == predicted_csv(client, "wafermap", [("wafers.zip", archive.getvalue())])
    assert len(frame(got)) == 23 and frame(got)["label"].tolist()[20:] == [labels[21], "", ""]
    assert any("c/broken.png" in w for w in job["result"]["warnings"])


def test_a_damaged_map_refuses_its_npz_before_any_of_it_is_scored(tmp_path, val_maps,
                                                                  monkeypatch):
    from webapp.modules.wafermap import batch

    monkeypatch.setattr(batch, "CHUNK_MAPS", 10)
    maps, labels = [m.copy() for m in val_maps[0][:40]], val_maps[1][:40]
    maps[33][0, 0] = 7  # in the fourth chunk
    write_npz(tmp_path / "bad.npz", maps, labels, layout="flat")
    app = create_app(jobs_config(tmp_path))
    client = app.test_client()
    upload_id = upload(client, "bad.npz", (tmp_path / "bad.npz").read_bytes(), part=1 << 20)
    job = run_job(app, module="wafermap", upload=upload_id)
    assert job["state"] == "failed", job
    assert "bad.npz" in job["error"] and "item 34" in job["error"] and "7" in job["error"]
    assert job["progress"]["done"] is None  # nothing was scored


def test_a_long_history_scores_whole_machines_like_the_predict_api(tmp_path, data_dir,
                                                                   monkeypatch):
    from webapp.modules.timeseries import batch

    monkeypatch.setattr(batch, "CHUNK_ROWS", 700)  # about three engines a chunk
    lines = fd001_slice(data_dir, 12)
    data = gzip.compress("".join(lines).encode())
    app = create_app(jobs_config(tmp_path))
    client = app.test_client()
    upload_id = upload(client, "fd001.txt.gz", data, part=len(data) // 4 + 1)
    job = run_job(app, module="timeseries", upload=upload_id)
    assert job["progress"]["done"] == job["progress"]["total"] == len(lines)
    got = job_csv(client, job)
    assert got == predicted_csv(client, "timeseries", [("fd001.txt.gz", data)])
    same_drift(app, job)  # summed over the chunks' range counts
    assert job["result"]["n_flagged"] == int((frame(got)["is_anomaly"] == "True").sum()) > 0
    # the training engines: in-sample, as the API warns; each flagged stretch is one event
    assert any("in-sample" in w for w in job["result"]["warnings"])
    events = client.get("/api/v1/events?module=timeseries").get_json()
    assert {e["run_id"] for e in events["events"]} == {job["run_id"]}


def test_machines_whose_rows_interleave_are_kept_whole(tmp_path, data_dir, monkeypatch):
    """A CSV of daily rows (every machine each day): rows are sorted into one scratch file per
    chunk of whole machines first, and every row gets the API's values; a bad cell is named by
    its row in the file."""
    from webapp.modules.timeseries import batch

    monkeypatch.setattr(batch, "CHUNK_ROWS", 700)
    from pipelines.timeseries.ingest import read_series

    series = read_series("".join(fd001_slice(data_dir, 8)).encode(), "x.txt")
    table = pd.DataFrame(series.values, columns=series.sensors)
    table.insert(0, "cycle", series.cycles)
    table.insert(0, "machine", [f"M-{m}" for m in series.machines])
    table = table.sort_values(["cycle", "machine"], kind="stable")  # day by day
    data = table.to_csv(index=False).encode()
    app = create_app(jobs_config(tmp_path))
    client = app.test_client()
    job = run_job(app, module="timeseries", upload=upload(client, "days.csv", data,
                                                          part=len(data)))
    got, want = frame(job_csv(client, job)), frame(predicted_csv(client, "timeseries",
                                                                 [("days.csv", data)]))
    assert job["progress"]["done"] == len(want) == len(got)
    # chunks of whole machines, first seen first: a machine's rows never span two chunks
    machines = got["machine_id"].tolist()
    assert list(dict.fromkeys(machines)) == [f"M-{k}" for k in range(1, 9)]
    spans = {m: (machines.index(m), len(machines) - machines[::-1].index(m)) for m in machines}
    assert sum(hi - lo for lo, hi in spans.values()) > len(machines)  # interleaved in chunks

    def by_machine(f):
        return f.assign(c=f["cycle"].astype(float)).sort_values(["machine_id", "c"]) \
            .drop(columns="c").reset_index(drop=True)

    pd.testing.assert_frame_equal(by_machine(got), by_machine(want))
    lines = data.decode().splitlines(keepends=True)
    cells = lines[700].split(",")
    cells[5] = "12,5kg".replace(",", ";")
    lines[700] = ",".join(cells)
    bad = "".join(lines).encode()
    job = run_job(app, module="timeseries", upload=upload(client, "days.csv", bad,
                                                          part=len(bad)))
    assert job["state"] == "failed"
    assert "days.csv, row 700" in job["error"] and "12;5kg" in job["error"], job["error"]


def test_a_zip_of_photos_scores_like_the_predict_api(tmp_path, data_dir, monkeypatch):
    from webapp.modules.inspection import batch

    monkeypatch.setattr(batch, "CHUNK_PHOTOS", 16)  # the model's own batch: 16, then 5
    photos = bottle_photos(data_dir, 7)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in [*photos, ("good/broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)]:
            zf.writestr(name, data)
    data = archive.getvalue()
    app = create_app(jobs_config(tmp_path))
    client = app.test_client()
    upload_id = upload(client, "bottles.zip", data, part=len(data) // 3 + 1)
    job = run_job(app, module="inspection", upload=upload_id)
    got = job_csv(client, job)
    assert got == predicted_csv(client, "inspection", [("bottles.zip", data)])
    same_drift(app, job)  # over every photo's two statistics
    assert frame(got)["file"].tolist() == [n for n, _ in photos]
    assert any("good/broken.png" in w for w in job["result"]["warnings"])
    assert job["progress"]["done"] == 21


def test_a_sensor_job_refuses_a_folder_and_the_web_process_imports_no_dask(tmp_path):
    """Without a scheduler a scoring job never imports Dask (the web process's memory); a
    sensor job given a folder says what it reads."""
    code = textwrap.dedent(f"""
        import sys
        from tests.webapp.test_scoring_jobs import run_job
        from tests.webapp.test_jobs import jobs_config, upload
        from tests.conftest import make_batch_frame, to_csv_bytes
        from webapp import create_app
        from pathlib import Path
        tmp = Path({str(tmp_path)!r})
        (tmp / "in" / "folder").mkdir(parents=True)
        app = create_app(jobs_config(tmp, JOBS_INPUT_DIR=str(tmp / "in")))
        data = to_csv_bytes(make_batch_frame(30, seed=1))
        job = run_job(app, module="sensor", upload=upload(app.test_client(), "a.csv", data, 4096))
        assert job["state"] == "done", job
        folder = run_job(app, module="sensor", input="folder")
        assert folder["state"] == "failed" and "not a folder" in folder["error"], folder
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# -- on a Dask scheduler ------------------------------------------------------------------------------
def test_with_a_scheduler_a_scoring_job_runs_on_dask(tmp_path, scheduler, val_maps,  # noqa: F811
                                                     data_dir):
    """FABLENS_DASK_SCHEDULER: the job hands the data to pipelines.core.batch.score on the
    cluster (one partition per file of maps, photos 64 to a partition) and joins the
    partitions' results into its CSV; the rows equal the predict API's."""
    maps, labels = val_maps
    inputs = tmp_path / "inputs" / "maps"
    inputs.mkdir(parents=True)
    for k in range(3):
        write_npz(inputs / f"lot{k}.npz", maps[k * 40:(k + 1) * 40],
                  labels[k * 40:(k + 1) * 40] if k != 1 else None, layout="flat")
    app = create_app(jobs_config(tmp_path, DASK_SCHEDULER=scheduler,
                                 JOBS_INPUT_DIR=str(tmp_path / "inputs")))
    client = app.test_client()
    job = run_job(app, module="wafermap", input="maps")
    got = frame(job_csv(client, job))
    assert job["result"]["dask_scheduler"] == scheduler
    assert job["progress"]["done"] == job["progress"]["total"] == 120
    assert any("Dask" in line for line in job["log"])
    want = frame(predicted_csv(client, "wafermap", [(f"lot{k}.npz", (inputs / f"lot{k}.npz")
                                                    .read_bytes()) for k in range(3)]))
    assert got["name"].tolist() == want["name"].tolist()
    assert got["class"].tolist() == want["class"].tolist()
    assert got["label"].tolist() == want["label"].tolist()  # the unlabelled part left empty
    np.testing.assert_allclose(got["confidence"].astype(float), want["confidence"].astype(float),
                               rtol=0, atol=1e-6)
    assert got["needs_review"].tolist() == want["needs_review"].tolist()
    assert job["result"]["n_flagged"] == int((want["needs_review"] == "True").sum())

    photos = bottle_photos(data_dir, 3)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in photos:
            zf.writestr(name, data)
    job = run_job(app, module="inspection",
                  upload=upload(client, "bottles.zip", archive.getvalue(), part=1 << 20))
    got = frame(job_csv(client, job))
    want = frame(predicted_csv(client, "inspection", [("bottles.zip", archive.getvalue())]))
    assert got["file"].tolist() == want["file"].tolist()
    np.testing.assert_allclose(got["anomaly_score"].astype(float),
                               want["anomaly_score"].astype(float), rtol=1e-5, atol=1e-6)
    assert got["is_anomaly"].tolist() == want["is_anomaly"].tolist()


def test_a_sensor_and_a_history_job_on_dask(tmp_path, scheduler, data_dir):  # noqa: F811
    app = create_app(jobs_config(tmp_path, DASK_SCHEDULER=scheduler))
    client = app.test_client()
    rows = to_csv_bytes(make_batch_frame(60, seed=4, labels=True))
    job = run_job(app, module="sensor", upload=upload(client, "rows.csv", rows, part=1 << 20))
    got, want = frame(job_csv(client, job)), frame(predicted_csv(client, "sensor",
                                                                 [("rows.csv", rows)]))
    assert got["id"].tolist() == want["id"].tolist()
    np.testing.assert_array_equal(got["fault_score"].astype(float),
                                  want["fault_score"].astype(float))
    assert got["is_fault"].tolist() == want["is_fault"].tolist()
    history = "".join(fd001_slice(data_dir, 5)).encode()
    job = run_job(app, module="timeseries", upload=upload(client, "h.txt", history,
                                                          part=1 << 20))
    got, want = frame(job_csv(client, job)), frame(predicted_csv(client, "timeseries",
                                                                 [("h.txt", history)]))
    got = got.assign(c=got["cycle"].astype(float)).sort_values(["machine_id", "c"],
                                                               kind="stable")
    want = want.assign(c=want["cycle"].astype(float)).sort_values(["machine_id", "c"],
                                                                  kind="stable")
    assert got["machine_id"].tolist() == want["machine_id"].tolist()
    np.testing.assert_allclose(got["score"].astype(float), want["score"].astype(float),
                               rtol=0, atol=1e-6)
    assert got["is_anomaly"].tolist() == want["is_anomaly"].tolist()

"""Jobs (webapp/jobs): training and batch scoring on Huey's queue, with progress, cancel, and
no job lost or stuck ``running`` when its worker stops or dies.

Most tests train with ``fake_train.py`` (the training command's arguments and progress lines,
then the committed release): quick and deterministic. One trains a tiny wafer-map model for
real, end to end into a registry candidate; one scores a sensor file larger than one request
may be and compares the results with the predict API's for the same rows; one runs the queue
on a real redis-server with a separate worker process.
"""
from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import make_batch_frame, sqlite_url, stand_in_master, to_csv_bytes
from webapp import create_app, jobs
from webapp.db import upgrade, utcnow
from webapp.jobs.work import option_args, parse_progress

ROOT = Path(__file__).resolve().parents[2]
FAKE = [sys.executable, str(Path(__file__).with_name("fake_train.py"))]


def jobs_config(tmp_path: Path, **more) -> dict:
    url = sqlite_url(tmp_path)
    upgrade(url)
    return {"TESTING": True, "DATABASE_URL": url, "JOBS_DIR": str(tmp_path / "jobs"),
            "MODEL_STORE": str(tmp_path / "models"), "JOBS_HEARTBEAT_SECONDS": 0.2,
            "JOBS_TRAIN_COMMAND": FAKE, "JOBS_QUEUE": f"test-{uuid.uuid4().hex[:8]}", **more}


@pytest.fixture
def app(tmp_path):
    app = create_app(jobs_config(tmp_path))
    yield app
    jobs.stop_worker(app)


def submit(client, **body) -> int:
    response = client.post("/api/v1/jobs", json={"kind": "train", "module": "sensor"} | body)
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def wait_for(client, job_id: int, states: tuple[str, ...], seconds: float = 60,
             until=lambda job: True) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}?log=500").get_json()
        if until(job) and job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stayed {job['state']}: {job}"
        time.sleep(0.05)


def upload(client, name: str, data: bytes, part: int) -> int:
    opened = client.post("/api/v1/uploads", json={"name": name, "size": len(data)})
    assert opened.status_code == 201, opened.get_json()
    upload_id = opened.get_json()["id"]
    for start in range(0, len(data), part):
        sent = client.post(f"/api/v1/uploads/{upload_id}?offset={start}",
                           data=data[start:start + part],
                           content_type="application/octet-stream")
        assert sent.status_code == 200, sent.get_json()
    assert client.get(f"/api/v1/uploads/{upload_id}").get_json()["complete"]
    return upload_id


# -- progress, result, cancel ---------------------------------------------------------------------
def test_progress_moves_and_the_trained_release_becomes_a_candidate(app):
    client = app.test_client()
    job_id = submit(client, options={"epochs": 6, "pause": 0.25})
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["state"] == "queued"
    jobs.start_worker(app)
    seen = set()
    job = wait_for(client, job_id, ("done", "failed"), until=lambda j: bool(
        seen.add(j["progress"]["done"]) or True))
    assert job["state"] == "done", job
    counts = sorted(d for d in seen if d is not None)
    assert len(counts) >= 2 and counts[-1] == 6, counts  # the bar moved on the way
    assert job["progress"] | {"stage": None} == {"done": 6, "total": 6, "unit": "epochs",
                                                 "stage": None}
    assert any("epoch 3/6" in line for line in job["log"])
    assert job["user"] == "local" and job["result"]["version"] and job["registry_url"]
    source = Path(app.config["MODEL_STORE"]) / "sensor" / job["result"]["version"] / "source.json"
    assert "training job" in source.read_text()


def test_a_failed_training_says_why(app):
    client = app.test_client()
    job_id = submit(client, options={"epochs": 1, "fail": True})
    jobs.start_worker(app)
    job = wait_for(client, job_id, ("done", "failed"))
    assert job["state"] == "failed"
    assert "exit code 3" in job["error"] and "no labels" in job["error"]


def test_cancel_a_running_job_and_a_queued_one(app):
    client = app.test_client()
    running = submit(client, options={"epochs": 400, "pause": 0.05})
    waiting = submit(client, options={"epochs": 1})
    answer = client.post(f"/api/v1/jobs/{waiting}/cancel")
    assert answer.status_code == 200 and answer.get_json()["state"] == "cancelled"
    jobs.start_worker(app)
    wait_for(client, running, ("running",), until=lambda j: (j["progress"]["done"] or 0) >= 2)
    answer = client.post(f"/api/v1/jobs/{running}/cancel")
    assert answer.get_json()["cancel_requested"]
    job = wait_for(client, running, ("cancelled", "done", "failed"), seconds=20)
    assert job["state"] == "cancelled" and job["progress"]["done"] < 400
    assert client.get(f"/api/v1/jobs/{waiting}").get_json()["state"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{running}/cancel")
    assert again.status_code == 409 and "finished" in again.get_json()["message"]


def test_bad_job_requests_are_400s_naming_the_problem(app):
    client = app.test_client()
    cases = [({"kind": "bake", "module": "sensor"}, "kind"),
             ({"kind": "train", "module": "moon"}, "no module 'moon'"),
             ({"kind": "score", "module": "sensor"}, "needs a file"),
             ({"kind": "train", "module": "sensor", "upload": 99}, "no upload 99"),
             ({"kind": "train", "module": "sensor", "options": {"artifacts": "/"}},
              "not an option"),
             ({"kind": "train", "module": "sensor", "threshold": 0.5}, "for scoring jobs"),
             ({"kind": "score", "module": "sensor", "upload": 1, "threshold": "x"},
              "threshold"),
             ({"kind": "train", "module": "sensor", "input": "../etc"}, "input folder")]
    for body, needle in cases:
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 400, (body, response.get_json())
        assert needle in response.get_json()["message"], (body, response.get_json())
    assert client.get("/api/v1/jobs/12345").status_code == 404
    opened = client.post("/api/v1/uploads", json={"name": "a.csv", "size": 10}).get_json()
    wrong = client.post(f"/api/v1/uploads/{opened['id']}?offset=4", data=b"abc",
                        content_type="application/octet-stream")
    assert wrong.status_code == 409 and "byte 0" in wrong.get_json()["message"]
    huge = client.post("/api/v1/uploads", json={"name": "a.csv", "size": 10 ** 15})
    assert huge.status_code == 413
    unfinished = client.post("/api/v1/jobs", json={"kind": "score", "module": "sensor",
                                                   "upload": opened["id"]})
    assert unfinished.status_code == 400 and "send the rest" in unfinished.get_json()["message"]


def test_progress_lines_and_options():
    assert parse_progress("xgboost: day-blocked cv fold 3/10") == {"done": 3, "total": 10,
                                                                  "unit": "folds"}
    assert parse_progress("radial: features of 40/200 images") == {"done": 40, "total": 200,
                                                                  "unit": "images"}
    assert parse_progress("loaded 1567 wafers") is None
    assert option_args({"epochs": 2, "models": ["a", "b"], "params": {"x": 1},
                        "no_thing": True, "off": False}) == [
        "--epochs", "2", "--models", "a", "b", "--params", '{"x": 1}', "--no-thing"]


# -- restarts: a separate worker process killed, stopped, started again ----------------------------
def _env(config: dict, **more) -> dict:
    return {**os.environ, "DATABASE_URL": config["DATABASE_URL"],
            "FABLENS_JOBS_DIR": config["JOBS_DIR"], "FABLENS_MODEL_STORE": config["MODEL_STORE"],
            "FABLENS_JOBS_TRAIN_COMMAND": shlex.join(FAKE), "FABLENS_JOBS_QUEUE":
            config["JOBS_QUEUE"], "FABLENS_LOG_FORMAT": "text", **more}


FLASK_WORKER = [sys.executable, "-m", "flask", "--app", "webapp", "jobs", "worker"]
FABLENS_WORKER = [sys.executable, "-m", "webapp.cli", "worker"]  # `fablens worker`


@contextmanager
def worker_process(env: dict, log: Path, command: list[str] = FLASK_WORKER):
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def test_a_killed_worker_leaves_its_job_failed_and_queued_jobs_run_after_a_restart(tmp_path):
    config = jobs_config(tmp_path)
    client = create_app(config).test_client()
    doomed = submit(client, options={"epochs": 300, "pause": 0.05})
    later = submit(client, options={"epochs": 2, "pause": 0.01})
    env = _env(config)
    with worker_process(env, tmp_path / "worker.log") as worker:
        running = wait_for(client, doomed, ("running",), seconds=90,
                           until=lambda j: (j["progress"]["done"] or 0) >= 1)
        assert running["progress"]["unit"] == "epochs"
        os.kill(worker.pid, signal.SIGKILL)  # the worker dies mid-job (OOM killer, a crash)
        worker.wait(10)
    job = client.get(f"/api/v1/jobs/{doomed}").get_json()  # read now: never left running
    assert job["state"] == "failed" and "stopped before the job finished" in job["error"]
    assert client.get(f"/api/v1/jobs/{later}").get_json()["state"] == "queued"
    with worker_process(env, tmp_path / "worker.log"):  # the restart runs what waited
        assert wait_for(client, later, ("done", "failed"), seconds=90)["state"] == "done"


def test_a_stopped_worker_puts_its_job_back_and_the_next_one_finishes_it(tmp_path):
    config = jobs_config(tmp_path)
    client = create_app(config).test_client()
    job_id = submit(client, options={"epochs": 60, "pause": 0.1})
    env = _env(config)
    with worker_process(env, tmp_path / "worker.log") as worker:
        wait_for(client, job_id, ("running",), seconds=90,
                 until=lambda j: (j["progress"]["done"] or 0) >= 2)
        worker.send_signal(signal.SIGTERM)  # a deploy or a restart: a graceful stop
        assert worker.wait(30) == 0
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["state"] == "queued" and any("queued again" in line for line in job["log"])
    with worker_process(env, tmp_path / "worker.log"):
        job = wait_for(client, job_id, ("done", "failed"), seconds=90)
    assert job["state"] == "done", job


def test_a_job_whose_heartbeat_stopped_is_failed_by_whoever_reads_it(app):
    from webapp.jobs import store

    client = app.test_client()
    job_id = submit(client, options={"epochs": 1})
    engine = app.extensions["fablens_db"]
    assert store.claim(engine, job_id)
    with engine.begin() as conn:  # a worker on another machine that went silent long ago
        conn.execute(store.jobs.update().where(store.jobs.c.id == job_id).values(
            worker="elsewhere:1", heartbeat=utcnow().replace(year=2020)))
    job = client.get(f"/api/v1/jobs/{job_id}").get_json()
    assert job["state"] == "failed" and "elsewhere:1" in job["error"]


def test_a_worker_that_exits_has_its_running_jobs_failed_by_its_master(tmp_path, monkeypatch):
    """gunicorn's master sees a worker exit (child_exit): the jobs that worker's embedded job
    worker was running are failed with the reason, another worker's are left running, and a
    job the worker put back in the queue as it stopped stays queued."""
    from types import SimpleNamespace

    from webapp import gunicorn_conf
    from webapp.jobs import store

    config = jobs_config(tmp_path)
    app = create_app(config)
    client = app.test_client()
    server = stand_in_master(monkeypatch, config["DATABASE_URL"], tmp_path)
    logs = server.logs
    gunicorn_conf.on_starting(server)
    engine = app.extensions["fablens_db"]
    mine, other, requeued = (submit(client, options={"epochs": 1}) for _ in range(3))
    for job_id, pid in ((mine, 4242), (other, 4243), (requeued, 4242)):
        assert store.claim(engine, job_id)
        with engine.begin() as conn:
            conn.execute(store.jobs.update().where(store.jobs.c.id == job_id)
                         .values(worker=store.worker_marker(pid)))
    assert store.requeue(engine, requeued, "the worker stopped")  # its worker_exit hook did
    gunicorn_conf.child_exit(server, SimpleNamespace(pid=4242))
    states = {i: store.get(engine, i) for i in (mine, other, requeued)}
    assert {i: j["state"] for i, j in states.items()} == {mine: "failed", other: "running",
                                                          requeued: "queued"}
    assert states[mine]["error"].startswith("the worker running it stopped")
    assert store.worker_marker(4242) in states[mine]["error"]
    assert any(level == "warning" and "job(s)" in a[0] for level, a in logs)
    gunicorn_conf.child_exit(server, SimpleNamespace(pid=4242))  # again: nothing more
    assert store.get(engine, other)["state"] == "running"


# -- Redis: the same jobs on a real redis-server, worked by a separate process ---------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path):
    """``FABLENS_TEST_REDIS_URL`` (``make test`` starts one with .ci/redis.sh), else a
    redis-server of our own on a free loopback port; skipped without one (failed under CI)."""
    if os.environ.get("FABLENS_TEST_REDIS_URL"):
        yield os.environ["FABLENS_TEST_REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs redis-server: `make test` installs it (.ci/redis.sh)")
        pytest.skip("no redis-server (make test installs Debian's)")
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def test_jobs_run_on_redis_by_a_separate_worker_process(tmp_path, redis_url):
    config = jobs_config(tmp_path, REDIS_URL=redis_url)
    app = create_app(config)
    assert not jobs.embedded(app)  # with Redis the web workers only submit
    client = app.test_client()
    job_id = submit(client, options={"epochs": 3, "pause": 0.05})
    with worker_process(_env(config, REDIS_URL=redis_url), tmp_path / "worker.log",
                        FABLENS_WORKER) as worker:
        job = wait_for(client, job_id, ("done", "failed"), seconds=90)
    assert job["state"] == "done", job
    assert f":{worker.pid}" in "\n".join(job["log"])  # run by that process, not this one


# -- the real thing: a tiny training job, and a batch-scoring job past the request limits ----------
def test_a_tiny_wafermap_training_job_from_an_upload_becomes_a_registry_candidate(tmp_path):
    from pipelines.wafermap.ingest import write_npz
    from tests.wafermap.conftest import synthetic_maps

    app = create_app(jobs_config(tmp_path, JOBS_TRAIN_COMMAND=[sys.executable, "-m",
                                                               "pipelines.train"],
                                 MAX_CONTENT_LENGTH=64 * 1024))
    client = app.test_client()
    maps, labels = synthetic_maps(96, seed=0)
    npz = tmp_path / "maps.npz"
    write_npz(npz, maps, labels, layout="flat", split=["train" if i % 3 else "val"
                                                       for i in range(len(maps))])
    data = npz.read_bytes()
    upload_id = upload(client, "my maps.npz", data, part=60 * 1024)  # parts under the limit
    job_id = submit(client, module="wafermap", upload=upload_id, options={
        "epochs": 2, "epoch_size": 64, "threads": 1,
        "params": {"channels": [4, 8, 8, 8], "batch_size": 32, "tta": 2,
                   "occlusion_stride": 8}})
    jobs.start_worker(app)
    try:
        job = wait_for(client, job_id, ("done", "failed"), seconds=400)
    finally:
        jobs.stop_worker(app)
    assert job["state"] == "done", job
    version = job["result"]["version"]
    listing = client.get("/api/v1/registry/wafermap").get_json()
    candidate = next(v for v in listing["versions"] if v["id"] == version)
    assert candidate["source"] == f"training job {job_id}"
    assert not candidate["live"] and listing["live"] != version  # never live by itself
    assert candidate["models_detail"]  # its metrics, shown beside the live version's
    assert any("epoch 2/2" in line for line in job["log"])
    page = client.get("/registry").get_data(as_text=True)
    assert version in page


def test_a_sensor_file_past_the_request_limit_scores_as_a_job_like_the_predict_api(tmp_path):
    limit = 256 * 1024
    app = create_app(jobs_config(tmp_path, MAX_CONTENT_LENGTH=limit, MAX_ROWS=100))
    client = app.test_client()
    frame = make_batch_frame(300, seed=3, labels=True)
    data = to_csv_bytes(frame)
    assert len(data) > 4 * limit
    whole = client.post("/api/v1/sensor/predict?format=csv",
                        data={"file": (io.BytesIO(data), "big.csv")})
    assert whole.status_code == 413  # one request cannot take it
    upload_id = upload(client, "big.csv", data, part=limit - 4096)
    job_id = submit(client, kind="score", upload=upload_id)
    jobs.start_worker(app)
    try:
        job = wait_for(client, job_id, ("done", "failed"), seconds=120)
    finally:
        jobs.stop_worker(app)
    assert job["state"] == "done", job
    assert job["progress"]["done"] == job["progress"]["total"] == 300
    assert job["progress"]["unit"] == "rows"
    scored = client.get(job["results_url"])
    assert scored.status_code == 200
    pieces = []
    for start in range(0, len(frame), 40):  # the predict API, the same rows in allowed pieces
        part = to_csv_bytes(frame.iloc[start:start + 40])
        answer = client.post("/api/v1/sensor/predict?format=csv",
                             data={"file": (io.BytesIO(part), "part.csv")})
        assert answer.status_code == 200
        pieces.append(answer.data if not pieces else answer.data.split(b"\n", 1)[1])
    assert scored.data == b"".join(pieces)
    assert job["result"]["n_items"] == 300
    history = client.get(job["run_url"]).get_data(as_text=True)
    assert f"job {job_id}: big.csv" in history and f"/api/v1/jobs/{job_id}/results.csv" in history
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert "Download the results CSV" in page

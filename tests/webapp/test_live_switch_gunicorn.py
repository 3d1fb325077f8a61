"""The live switch under the real server: render.yaml's start command with two gunicorn workers.

A version set live through the registry API is served by every worker within
LIVE_CHECK_SECONDS (each worker re-reads the database), without a restart; a rollback likewise;
every run in the database records the release that scored it.

Which worker answered is read from the workers' Prometheus files (``counter_<pid>.db`` in
PROMETHEUS_MULTIPROC_DIR): requests are sent until both workers' predict counters moved.
"""
from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pipelines.core import locations
from pipelines.core.versions import version_id
from tests.conftest import make_batch_frame, to_csv_bytes
from tests.webapp.test_render import free_port, render_field, start, stop, wait_for

try:  # the server needs gunicorn (not on Windows); skip only where it cannot run
    import gunicorn  # noqa: F401
    import fcntl  # noqa: F401  gunicorn is POSIX-only
except ImportError:  # pragma: no cover
    pytest.skip("gunicorn cannot run here", allow_module_level=True)

WORKERS = 2
STREAK = 20  # answers in a row that must all carry the live version
SWITCH_SECONDS = 30  # LIVE_CHECK_SECONDS (2 s by default) plus generous slack
CSV = to_csv_bytes(make_batch_frame(4))
PREDICT_ENDPOINT = "sensor_api.predict"


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": content_type, "Connection": "close"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def predict(base: str) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"w.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() + CSV + \
        f"\r\n--{boundary}--\r\n".encode()
    status, answer = post(f"{base}/api/v1/sensor/predict", body,
                          f"multipart/form-data; boundary={boundary}")
    assert status == 200, answer
    return answer


def switch(base: str, version: str, reason: str) -> None:
    status, answer = post(f"{base}/api/v1/registry/sensor/live",
                          json.dumps({"version": version, "reason": reason}).encode(),
                          "application/json")
    assert status == 200 and answer["live"] == version, answer


def predicts_per_worker(directory: Path) -> dict[int, float]:
    """pid -> sensor predict requests that worker answered, from its own counter file."""
    from prometheus_client.mmap_dict import MmapedDict

    out = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)  # metric, sample name, labels, help
            if name == "fablens_http_requests_total" and \
                    labels.get("endpoint") == PREDICT_ENDPOINT:
                total += value
        out[pid] = total
    return out


def streak(base: str, directory: Path, release: str) -> list[dict]:
    """Within SWITCH_SECONDS: STREAK answers in a row, every one with ``release``, answered by
    both workers. An older answer starts the streak again (one worker saw the switch before
    the other); after SWITCH_SECONDS an older answer fails the test."""
    deadline = time.monotonic() + SWITCH_SECONDS
    answers, before = [], predicts_per_worker(directory)
    while True:
        answer = predict(base)
        if answer["release"] != release:
            assert time.monotonic() < deadline, \
                f"a worker still served {answer['release']}, not {release}, after " \
                f"{SWITCH_SECONDS} s ({len(answers)} answers in a row before it)"
            time.sleep(0.1)
            answers, before = [], predicts_per_worker(directory)
            continue
        answers.append(answer)
        moved = {pid for pid, n in predicts_per_worker(directory).items()
                 if n > before.get(pid, 0)}
        if len(answers) >= STREAK and len(moved) >= WORKERS:
            return answers
        assert time.monotonic() < deadline + SWITCH_SECONDS, \
            f"only workers {moved} answered {len(answers)}"


def test_every_gunicorn_worker_serves_the_switched_version_and_the_rollback(tmp_path):
    store = tmp_path / "store"
    committed_dir = locations.artifacts_dir({}) / "sensor"
    candidate_dir = store / "sensor" / "candidate"
    shutil.copytree(committed_dir, candidate_dir)
    manifest = candidate_dir / "xgboost" / "manifest.json"
    bundle = json.loads(manifest.read_text())
    bundle["threshold"]["value"] = 0.9  # a stricter candidate: a different version
    manifest.write_text(json.dumps(bundle))
    (candidate_dir / "source.json").write_text(json.dumps({"source": "test candidate"}))
    candidate = version_id(candidate_dir)

    metrics = tmp_path / "prometheus"
    metrics.mkdir()
    database = tmp_path / "fablens.sqlite"
    command = render_field("startCommand").replace("--workers 1", f"--workers {WORKERS}")
    assert f"--workers {WORKERS}" in command, command
    command = command.replace("0.0.0.0:", "127.0.0.1:")
    port = free_port()
    env = (f"FABLENS_AUTH=open FABLENS_MODEL_STORE={store} PROMETHEUS_MULTIPROC_DIR={metrics} "
           "FABLENS_LOG_FORMAT=text")
    proc = start(f"{env} {command}", port, database)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(proc, f"{base}/health", seconds=60)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health/ready", timeout=10) as response:
                    if response.status == 200:
                        break
            except urllib.error.HTTPError as exc:
                assert exc.code == 503, exc.code
            assert proc.poll() is None and time.monotonic() < deadline, "never ready"
            time.sleep(0.2)

        with urllib.request.urlopen(f"{base}/api/v1/registry/sensor", timeout=10) as response:
            listing = json.loads(response.read())
        committed = listing["live"]
        assert [v["id"] for v in listing["versions"]] == [committed, candidate], listing

        served = streak(base, metrics, committed)  # both workers, the committed release
        assert all(a["default_threshold"] != 0.9 for a in served)

        switch(base, candidate, "stricter threshold for lot 7")
        switched = streak(base, metrics, candidate)
        assert all(a["default_threshold"] == 0.9 for a in switched)

        switch(base, committed, "rollback")
        rolled_back = streak(base, metrics, committed)
        assert proc.poll() is None, "gunicorn stopped"
    finally:
        output = stop(proc)
    assert "Traceback" not in output and "Worker failed to boot" not in output, output[-3000:]

    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            recorded = dict(conn.execute(text("SELECT id, release FROM runs")).all())
    finally:
        engine.dispose()
    for answer in served + switched + rolled_back:
        assert recorded[answer["run_id"]] == answer["release"], answer["run_id"]
    assert {recorded[a["run_id"]] for a in switched} == {candidate}
    assert {recorded[a["run_id"]] for a in rolled_back} == {committed}

"""Memory of the whole server as render.yaml starts it, with every ready module loaded.

Run: ``python -m benchmarks.server_memory`` (writes ``benchmarks/out/server_memory.json``).

Starts render.yaml's start command (gunicorn master + workers) on a free port and a fresh
SQLite file, sends readiness checks until every worker has loaded every ready module's
models, and reads each process's resident (RSS) and proportional (PSS: shared pages split
between the processes sharing them) memory from /proc. Then it posts one CSV batch per
``--rows`` value to the sensor API and reads each worker's peak (VmHWM) and settled RSS.
Render's free instance has 512 MB for the whole server.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_command() -> str:
    text = (ROOT / "render.yaml").read_text()
    return re.search(r"^\s+startCommand:\s*(.+)$", text, re.MULTILINE).group(1).strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(c) for c in text]
    return out


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and peak RSS (VmHWM) of one process, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(text: str, name: str) -> float:
        return int(re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024

    return {"rss": round(field(status, "VmRSS"), 1), "pss": round(field(rollup, "Pss"), 1),
            "peak_rss": round(field(status, "VmHWM"), 1)}


def snapshot(master: int) -> dict:
    workers = children(master)
    procs = {"master": memory(master)} | {f"worker {i + 1}": memory(w) for i, w in enumerate(workers)}
    return {"processes": procs,
            "total_rss_mib": round(sum(p["rss"] for p in procs.values()), 1),
            "total_pss_mib": round(sum(p["pss"] for p in procs.values()), 1)}


def sensor_csv(rows: int) -> bytes:
    from pipelines.sensor.predict import SensorPredictor
    from pipelines.sensor.samples import sensor_sample

    model = SensorPredictor(ROOT / "artifacts" / "sensor").sample_model
    return sensor_sample(model, n_rows=rows, seed=1).to_csv(index=False).encode()


def post_csv(port: int, payload: bytes) -> int:
    boundary = "fablensbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"bench.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode() + payload + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/sensor/predict?format=csv", data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return len(response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[10_000],
                        help="CSV batch sizes to post after loading (default 10000)")
    args = parser.parse_args(argv)
    from webapp.modules import ready_modules

    n_modules = len(ready_modules())
    port = free_port()
    tmp = tempfile.mkdtemp()
    env = {**os.environ, "PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = open(Path(tmp) / "server.log", "w+")
    proc = subprocess.Popen(start_command(), shell=True, cwd=ROOT, env=env, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        master = None
        deadline = time.time() + 60
        while time.time() < deadline and master is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                master = next(c for c in children(proc.pid))  # sh -> gunicorn master
            except (OSError, StopIteration):
                time.sleep(0.2)
        if master is None:
            raise SystemExit("the server did not start")
        if not children(master):  # the shell exec'd gunicorn itself
            master = proc.pid
        idle = snapshot(master)
        n_workers = len(children(master))

        def ready(_):
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=60).status

        deadline = time.time() + 120
        while time.time() < deadline:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(ready, range(8)))
            log.seek(0)
            if log.read().count("loaded sensor models") >= n_workers * n_modules:
                break
        loaded = snapshot(master)
        batches = {}
        for rows in args.rows:
            payload = sensor_csv(rows)
            start = time.perf_counter()
            size = post_csv(port, payload)
            seconds = time.perf_counter() - start
            time.sleep(1.0)
            batches[str(rows)] = {"csv_mb": round(len(payload) / 1e6, 1),
                                  "seconds": round(seconds, 2), "response_bytes": size,
                                  **snapshot(master)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    result = {"command": start_command(), "workers": n_workers, "modules_loaded": n_modules,
              "idle": idle, "models_loaded": loaded, "after_batches": batches}
    out = ROOT / "benchmarks" / "out"
    out.mkdir(exist_ok=True)
    (out / "server_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print("| state | master + workers RSS | PSS (shared pages split) | largest worker peak |")
    print("| --- | --- | --- | --- |")
    rows = [("started, nothing loaded", idle), (f"every module loaded in all {n_workers} workers", loaded)]
    rows += [(f"after scoring a {r}-row CSV ({b['csv_mb']} MB, {b['seconds']} s)", b)
             for r, b in batches.items()]
    for label, snap in rows:
        peak = max(p["peak_rss"] for name, p in snap["processes"].items() if name != "master")
        print(f"| {label} | {snap['total_rss_mib']:.0f} MiB | {snap['total_pss_mib']:.0f} MiB | "
              f"{peak:.0f} MiB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

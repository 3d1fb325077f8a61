"""Memory of the whole server as render.yaml starts it, while it scores large CSV uploads.

Run: ``python -m benchmarks.server_memory [--rows 10000] [--uploads 3] [--big-rows 100000]
[--markdown PATH]`` (JSON on stdout and in ``benchmarks/out/server_memory.json``).

Starts render.yaml's ``startCommand`` (read from the file, never restated here) on a free
loopback port and a fresh SQLite file, sends readiness checks until every worker has loaded
every ready module's models, then posts ``--uploads`` generated ``--rows``-row CSVs to the
sensor API one after another, and one ``--big-rows``-row CSV that fits the upload limit.
After each upload it reads every process's resident (RSS) and proportional (PSS: shared
pages split between the processes sharing them) memory from /proc; while each upload runs
it samples them every 0.1 s for the peak. The issue-6 budget: summed PSS (master + workers)
at or under 512 MiB after three 10,000-row uploads (Render's free instance has 512 MB).
"""
from __future__ import annotations

import argparse
import json
import concurrent.futures
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchmarks.common import (ROOT, add_markdown_option, emit, log_to_stderr, sample_model,
                               sensor_csv)

logger = logging.getLogger(__name__)

BUDGET_MIB = 512
SAMPLE_SECONDS = 0.1


def start_command() -> str:
    """render.yaml's ``startCommand``, as Render runs it."""
    text = (ROOT / "render.yaml").read_text()
    return re.search(r"^\s+startCommand:\s*(.+)$", text, re.MULTILINE).group(1).strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all threads)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
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
    """Every server process's memory and the sums over master + workers."""
    procs = {"master": memory(master)}
    procs |= {f"worker {i + 1}": memory(w) for i, w in enumerate(children(master))}
    return {"processes": procs,
            "total_rss_mib": round(sum(p["rss"] for p in procs.values()), 1),
            "total_pss_mib": round(sum(p["pss"] for p in procs.values()), 1),
            "largest_worker_peak_rss_mib": max(
                (p["peak_rss"] for name, p in procs.items() if name != "master"), default=0.0)}


class PeakSampler:
    """Samples the server's summed PSS and RSS in a thread; ``peak`` holds the maxima seen."""

    def __init__(self, master: int, every: float = SAMPLE_SECONDS):
        self.master, self.every = master, every
        self.peak = {"total_pss_mib": 0.0, "total_rss_mib": 0.0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                snap = snapshot(self.master)
            except (OSError, AttributeError):  # a worker restarting between reads
                continue
            for key in self.peak:
                self.peak[key] = max(self.peak[key], snap[key])
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class RenderServer:
    """render.yaml's start command on a free loopback port; every worker's models loaded."""

    def __init__(self, start_timeout: float = 60, load_timeout: float = 120):
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="fablens-bench-")
        self.start_timeout, self.load_timeout = start_timeout, load_timeout
        self.proc: subprocess.Popen | None = None
        self.master = 0
        self.idle: dict = {}
        self.auth: dict = {}  # the Authorization header of a viewer's token (accounts are on)
        self.engineer_auth: dict = {}  # and of an engineer's (registry changes)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict:
        return {**os.environ, "PORT": str(self.port),
                "DATABASE_URL": f"sqlite:///{self.tmp}/bench.sqlite",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}

    def _wait_for_master(self) -> None:
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=2).read()
                shell_children = children(self.proc.pid)
                # `sh -c` may exec gunicorn itself, or run it as its one child
                self.master = shell_children[0] if shell_children and children(
                    shell_children[0]) else self.proc.pid
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the server did not start; see {self.log_path}")

    @property
    def log_path(self) -> Path:
        return Path(self.tmp) / "server.log"

    def _load_models(self) -> None:
        """Readiness checks until every worker logged loading every ready module."""
        from webapp.modules import ready_modules

        names = [spec.name for spec in ready_modules()]
        workers = len(children(self.master))

        def ready(_) -> int:  # 503 while the worker's loader is still at work
            try:
                return urllib.request.urlopen(f"{self.url}/health/ready", timeout=60).status
            except urllib.error.HTTPError as exc:
                return exc.code

        deadline = time.time() + self.load_timeout
        while time.time() < deadline:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(ready, range(8)))
            log = self.log_path.read_text()
            if all(log.count(f"loaded {name} models") >= workers for name in names):
                return
        raise RuntimeError(f"not every worker loaded its models; see {self.log_path}")

    def _tokens(self) -> tuple[dict, dict]:
        """Migrate the fresh database and make a viewer and an engineer with a token each, as
        an admin would with the CLI: the server runs with accounts on, exactly as render.yaml
        starts it. Their Authorization headers."""
        import secrets

        env = self._environment()
        flask = [sys.executable, "-m", "flask", "--app", "webapp"]
        subprocess.run(flask + ["db", "upgrade"], cwd=ROOT, check=True, capture_output=True,
                       env=env)
        headers = []
        for name, role in (("bench", "viewer"), ("bench-engineer", "engineer")):
            subprocess.run(flask + ["users", "create", name, "--role", role], cwd=ROOT,
                           check=True, capture_output=True,
                           env={**env, "FABLENS_PASSWORD": secrets.token_urlsafe(16)})
            token = subprocess.run(flask + ["tokens", "create", name], cwd=ROOT, check=True,
                                   capture_output=True, text=True, env=env).stdout.strip()
            headers.append({"Authorization": f"Bearer {token}"})
        return headers[0], headers[1]

    def post_json(self, path: str, body: dict, engineer: bool = True) -> dict:
        """POST ``body`` to ``path`` as the engineer (or the viewer); the JSON answer."""
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json",
                     **(self.engineer_auth if engineer else self.auth)})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def get_json(self, path: str) -> dict:
        request = urllib.request.Request(f"{self.url}{path}", headers=self.auth)
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def attach_shadow(self, module: str) -> str:
        """Make a candidate of ``module`` (its live version with the default model's threshold
        moved a little: the same models, so the same memory as a retrained one) and attach it
        as the shadow candidate; its id."""
        release = json.loads((ROOT / "artifacts" / module / "manifest.json").read_text())
        model = release["default_model"]
        bundle = json.loads((ROOT / "artifacts" / module / model / "manifest.json").read_text())
        created = self.post_json(f"/api/v1/registry/{module}/threshold", {
            "model": model, "value": bundle["threshold"]["value"] * 0.999, "live": False,
            "reason": "benchmark candidate"})["created"]
        self.post_json(f"/api/v1/registry/{module}/shadow",
                       {"version": created, "reason": "benchmark"})
        return created

    def shadow_runs(self, module: str) -> int:
        """How many live runs the attached candidate has scored so far."""
        comparison = self.get_json(f"/api/v1/registry/{module}")["comparison"] or {}
        return int(comparison.get("runs") or 0)

    def __enter__(self) -> "RenderServer":
        self.auth, self.engineer_auth = self._tokens()
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(start_command(), shell=True, cwd=ROOT,
                                     env=self._environment(), start_new_session=True,
                                     stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_for_master()
            self.idle = snapshot(self.master)
            self._load_models()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)

    def workers(self) -> int:
        return len(children(self.master))


def multipart(payload: bytes, filename: str = "bench.csv") -> tuple[bytes, str]:
    """A multipart body with ``payload`` in the form field ``file``, and its content type."""
    boundary = "fablensbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n").encode() + payload + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str, headers: dict | None = None,
         timeout: float = 600) -> tuple[int, bytes]:
    """POST ``body``; ``(status, response bytes)``, an HTTP error's too. ``headers``: the
    server's ``auth`` (accounts are on: a request without a token is a 401)."""
    request = urllib.request.Request(url, data=body,
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post_csv(url: str, payload: bytes, timeout: float = 600,
             path: str = "/api/v1/sensor/predict?format=csv",
             headers: dict | None = None) -> tuple[int, int]:
    """Upload a CSV for the results CSV; ``(status, response bytes)``."""
    body, content_type = multipart(payload)
    request = urllib.request.Request(f"{url}{path}", data=body,
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, len(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, len(exc.read())


def sparse_csv(rows: int, limit_bytes: int, model: dict) -> tuple[bytes, int]:
    """A ``rows``-row generated CSV that fits ``limit_bytes``: the first k sensors filled
    (values from the sample model, 2 decimals), the rest empty, k as large as fits in 95% of
    the limit. Returns the bytes and k."""
    from pipelines.sensor.samples import sensor_sample
    from pipelines.sensor.schema import SENSOR_COLUMNS

    block = sensor_sample(model, n_rows=1000, seed=2)[SENSOR_COLUMNS].round(2)
    cells = block.astype("string").fillna("").to_numpy()
    width = cells.shape[1]

    def lines(k: int, n: int) -> list[str]:
        tail = "," * (width - k)
        return [f"W{i + 1}," + ",".join(cells[i % len(cells), :k]) + tail for i in range(n)]

    def size(k: int) -> float:
        return sum(len(line) + 1 for line in lines(k, len(cells))) * rows / len(cells)

    low, high = 0, width  # the largest k that fits (size grows with k)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if size(mid) <= 0.95 * limit_bytes else (low, mid - 1)
    k = low
    header = ",".join(["Wafer", *SENSOR_COLUMNS])
    return ("\n".join([header, *lines(k, rows)]) + "\n").encode(), k


def upload_and_measure(server: RenderServer, payload: bytes, **post) -> dict:
    """Post one CSV; its status, time, the peak while it ran and the memory a second after."""
    with PeakSampler(server.master) as sampler:
        start = time.perf_counter()
        status, size = post_csv(server.url, payload, headers=server.auth, **post)
        seconds = time.perf_counter() - start
    time.sleep(1.0)
    after = snapshot(server.master)
    return {"status": status, "csv_mb": round(len(payload) / 1e6, 1), "seconds": round(seconds, 2),
            "response_bytes": size, "peak_total_pss_mib": sampler.peak["total_pss_mib"],
            "peak_total_rss_mib": sampler.peak["total_rss_mib"], **after}


def timeseries_upload(server: RenderServer, machines: int) -> dict | None:
    """A generated ``machines``-machine history (about train_FD001's size at 100) through the
    time-series predict API, every cycle scored, once with each released model (the ONNX
    networks need the most memory); None when that module is not ready."""
    from webapp.modules import ready_modules

    if "timeseries" not in {spec.name for spec in ready_modules()}:
        return None
    from pipelines.timeseries.examples import history_csv, synthetic_history
    from pipelines.timeseries.predict import TimeseriesPredictor

    scaler = TimeseriesPredictor(ROOT / "artifacts" / "timeseries").scaler
    history = synthetic_history(scaler, machines, seed=9, min_cycles=128, max_cycles=362)
    payload = history_csv(history).encode()
    release = json.loads((ROOT / "artifacts" / "timeseries" / "manifest.json").read_text())
    return {"rows": len(history["machine"]), "machines": machines,
            "models": {name: upload_and_measure(
                server, payload, path=f"/api/v1/timeseries/predict?format=csv&model={name}")
                for name in release["models"]}}


def load_candidate(server: RenderServer, module: str) -> dict:
    """Attach a shadow candidate of ``module`` and send its example request until the
    candidate has scored one (so its models are loaded in the worker)."""
    from benchmarks.shadow_latency import example, timed

    candidate = server.attach_shadow(module)
    path, body, content_type = example(module)
    deadline = time.time() + 300
    while server.shadow_runs(module) < 1:
        if time.time() > deadline:
            raise RuntimeError(f"{module}: the candidate scored nothing in 300 s")
        timed(server, path, body, content_type, 1)
        time.sleep(0.5)
    return {"candidate": candidate}


# installed by the training and scale extras, never by requirements.txt; pandas imports
# pyarrow whenever it is installed, and the app's imports may reach scikit-learn only there
EXTRAS = ("sklearn", "imblearn", "torch", "pyarrow", "dask")


def extras_installed() -> list[str]:
    """Which of :data:`EXTRAS` this interpreter (and so the server it starts) can import: the
    budget is Render's, where requirements.txt alone is installed (``make serve-venv``)."""
    from importlib.util import find_spec

    return [name for name in EXTRAS if find_spec(name) is not None]


def markdown(result: dict) -> list[str]:
    """The table for BENCHMARKS.md."""
    shadow = result.get("shadow")
    note = f", a shadow candidate of {shadow['module']} loaded" if shadow else ""
    extras = result.get("extras_installed") or []
    installed = (f"; installed beyond requirements.txt: {', '.join(extras)} (not as deployed)"
                 if extras else "; requirements.txt alone, as deployed")
    lines = [f"Command: `{result['command']}` ({result['workers']} workers{note}{installed})",
             "",
             "| state | PSS summed (master + workers) | RSS summed | peak PSS during | "
             "largest worker peak RSS |", "| --- | --- | --- | --- | --- |"]

    def row(label: str, snap: dict) -> str:
        peak = snap.get("peak_total_pss_mib")
        return (f"| {label} | {snap['total_pss_mib']:.0f} MiB | {snap['total_rss_mib']:.0f} MiB | "
                f"{'-' if peak is None else f'{peak:.0f} MiB'} | "
                f"{snap['largest_worker_peak_rss_mib']:.0f} MiB |")

    lines.append(row("started, nothing loaded", result["idle"]))
    lines.append(row("every module loaded in every worker"
                     + (" and the candidate" if shadow else ""), result["models_loaded"]))
    for i, upload in enumerate(result["uploads"], 1):
        lines.append(row(f"after upload {i}: {result['rows']}-row CSV ({upload['csv_mb']} MB, "
                         f"{upload['seconds']} s, HTTP {upload['status']})", upload))
    big = result.get("big")
    if big:
        lines.append(row(f"{big['rows']}-row CSV ({big['csv_mb']} MB, {big['filled_sensors']} "
                         f"sensors filled, {big['seconds']} s, HTTP {big['status']})", big))
    series = result.get("timeseries")
    for name, run in (series or {}).get("models", {}).items():
        lines.append(row(f"time series: {series['rows']}-row history of {series['machines']} "
                         f"machines, every cycle scored by {name} ({run['csv_mb']} MB, "
                         f"{run['seconds']} s, HTTP {run['status']})", run))
    verdict = "within" if result["within_budget"] else "over"
    lines += ["", f"Highest peak: {result['highest_peak_pss_mib']:.0f} MiB PSS; after "
                  f"everything: {result['final_total_pss_mib']:.0f} MiB; {verdict} the "
                  f"{BUDGET_MIB} MiB budget."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows per upload (10000)")
    parser.add_argument("--uploads", type=int, default=3, help="uploads of --rows rows (3)")
    parser.add_argument("--big-rows", type=int, default=100_000,
                        help="rows of the large upload that fits the size limit (0: skip)")
    parser.add_argument("--shadow", metavar="MODULE", default=None,
                        help="attach a shadow candidate of MODULE first and have it loaded "
                             "(the budget with every live version and one candidate)")
    parser.add_argument("--series-machines", type=int, default=100,
                        help="machines in the time-series history scored last (0: skip)")
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    from webapp.config import defaults

    model = sample_model()
    payload = sensor_csv(args.rows, model=model)
    with RenderServer() as server:
        shadow = None
        if args.shadow:
            shadow = {"module": args.shadow, **load_candidate(server, args.shadow)}
        loaded = snapshot(server.master)
        uploads = [upload_and_measure(server, payload) for _ in range(args.uploads)]
        big = None
        if args.big_rows:
            data, filled = sparse_csv(args.big_rows, defaults()["MAX_CONTENT_LENGTH"], model)
            big = {"rows": args.big_rows, "filled_sensors": filled,
                   **upload_and_measure(server, data)}
        series = timeseries_upload(server, args.series_machines) \
            if args.series_machines else None
        result = {"command": start_command(), "workers": server.workers(), "rows": args.rows,
                  "idle": server.idle, "models_loaded": loaded, "uploads": uploads, "big": big,
                  "timeseries": series, "shadow": shadow}
    runs = [*uploads, *([big] if big else []), *(series or {}).get("models", {}).values()]
    final = runs[-1]["total_pss_mib"] if runs else loaded["total_pss_mib"]
    highest = max([loaded["total_pss_mib"], *(r["peak_total_pss_mib"] for r in runs)])
    result |= {"extras_installed": extras_installed(),
               "final_total_pss_mib": final, "highest_peak_pss_mib": highest,
               "budget_mib": BUDGET_MIB, "within_budget": highest <= BUDGET_MIB}
    emit("server_memory", result, markdown(result), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

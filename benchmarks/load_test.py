"""Load test: many engineers at once against the server as render.yaml starts it, over loopback.

Run: ``python -m benchmarks.load_test [--clients 50] [--seconds 60] [--think 0]
[--markdown PATH]`` (JSON on stdout and in ``benchmarks/out/load_test.json``).

Starts render.yaml's start command (``benchmarks.server_memory.RenderServer``: accounts on,
a viewer's token), loads every module in every worker, then runs ``--clients`` threads for
``--seconds``, each on its own keep-alive connection sending a mix of every module's
predict (``KINDS``: the share of each):

- light: one sensor row (JSON), one time-series detect window (JSON), one inspection photo
  (multipart PNG), ten wafer maps (JSON);
- heavy: a 1,000-row sensor CSV upload (``?format=csv``, about 4 MB: over the 1 MB line,
  so it takes its turn for a slot), fifty wafer maps.

After each answer a client waits ``--think`` seconds on average (exponential; 0: back to
back, the worst case: every client always has a request in flight). A 503 that says the
server is busy (``Retry-After``) is counted apart from errors (anything else but 200, or a
failed connection). Reports every kind's count, p50/p95/p99/max latency, errors and busy
answers, throughput per kind, and the server's summed PSS at the start, the end and the peak.
The issue-21 target: light requests p99 <= 300 ms while large uploads run, 0 errors, large
uploads no slower than before, PSS within 512 MiB.

Inputs are generated (sensor rows from the release's sample model, wafer maps from
``pipelines.wafermap.examples``), except the photo and the window, which are real test data
read from ``FABLENS_DATA_DIR`` (a bottle test photo, a C-MAPSS validation window).
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import add_markdown_option, emit, log_to_stderr, sample_model, sensor_csv
from benchmarks.server_memory import (ROOT, PeakSampler, RenderServer, multipart, snapshot,
                                      start_command)

logger = logging.getLogger(__name__)

# kind -> (share of requests, light?)
KINDS = {"sensor_row": (0.25, True), "detect_window": (0.25, True), "photo": (0.2, True),
         "maps_10": (0.15, True), "maps_50": (0.05, False), "sensor_csv_1000": (0.1, False)}


@dataclass
class Request:
    """One kind of request: path, body and headers."""

    kind: str
    path: str
    body: bytes
    headers: dict


@dataclass
class Tally:
    """Latencies, errors and busy answers per kind, shared by the client threads."""

    latencies: dict = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: Counter = field(default_factory=Counter)
    busy: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, outcome: str | None) -> None:
        with self.lock:
            if outcome == "busy":
                self.busy[kind] += 1
            else:
                self.latencies[kind].append(seconds)
                if outcome:
                    self.errors[f"{kind}: {outcome}"] += 1


def _maps_body(n: int, seed: int) -> bytes:
    import numpy as np

    from pipelines.wafermap.examples import PATTERNS, synthetic_map

    rng = np.random.default_rng(seed)
    maps = [synthetic_map(PATTERNS[i % len(PATTERNS)], 40, rng).tolist() for i in range(n)]
    return json.dumps({"maps": maps}).encode()


def requests(auth: dict, data: Path) -> dict[str, Request]:
    """Every kind's request, with ``auth`` (a token's header)."""
    from benchmarks.inspection_bench import photo_bytes
    from benchmarks.timeseries_bench import validation_windows
    from pipelines.sensor.samples import sensor_sample
    from pipelines.sensor.schema import SENSOR_COLUMNS

    model = sample_model()
    row = sensor_sample(model, n_rows=1, seed=3)[SENSOR_COLUMNS].iloc[0].tolist()
    window = validation_windows(data, ROOT / "artifacts")[0][0].tolist()
    photo, photo_type = multipart(photo_bytes(data, 1)[0][1], "bottle.png")
    upload, upload_type = multipart(sensor_csv(1000, seed=4, model=model))
    as_json = {"Content-Type": "application/json", **auth}
    return {
        "sensor_row": Request("sensor_row", "/api/v1/sensor/predict", json.dumps(
            {"instances": [[None if v != v else v for v in row]]}).encode(), as_json),
        "detect_window": Request("detect_window", "/api/v1/timeseries/detect", json.dumps(
            {"machine_id": "m1", "window": window}).encode(), as_json),
        "photo": Request("photo", "/api/v1/inspection/predict", photo,
                         {"Content-Type": photo_type, **auth}),
        "maps_10": Request("maps_10", "/api/v1/wafermap/predict", _maps_body(10, 1), as_json),
        "maps_50": Request("maps_50", "/api/v1/wafermap/predict", _maps_body(50, 2), as_json),
        "sensor_csv_1000": Request("sensor_csv_1000", "/api/v1/sensor/predict?format=csv",
                                   upload, {"Content-Type": upload_type, **auth}),
    }


def send(conn: http.client.HTTPConnection, request: Request) -> str | None:
    """One request on ``conn``; None when it answered 200, "busy" for a 503 with
    Retry-After, else what went wrong."""
    conn.request("POST", request.path, body=request.body, headers=request.headers)
    response = conn.getresponse()
    response.read()
    if response.status == 200:
        return None
    if response.status == 503 and response.getheader("Retry-After"):
        return "busy"
    return f"HTTP {response.status}"


def client(port: int, kinds: dict[str, Request], until: float, seed: int, think: float,
           tally: Tally, timeout: float) -> None:
    """Send requests until ``until``, waiting ``think`` s on average between them;
    reconnect after a failure."""
    rng = random.Random(seed)
    names, weights = list(KINDS), [KINDS[k][0] for k in KINDS]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if think:  # engineers do not all click at the same instant
        time.sleep(rng.uniform(0, 2 * think))
    while time.perf_counter() < until:
        request = kinds[rng.choices(names, weights)[0]]
        if think:  # after a pause, a new connection, as a browser makes: gunicorn closes
            conn.close()  # idle keep-alive connections after 2 s
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        start = time.perf_counter()
        try:
            outcome = send(conn, request)
        except (OSError, http.client.HTTPException) as exc:
            outcome = type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        tally.add(request.kind, time.perf_counter() - start, outcome)
        if think:
            time.sleep(min(rng.expovariate(1 / think), until - time.perf_counter()) if
                       until > time.perf_counter() else 0)
    conn.close()


def percentiles(values: list[float]) -> dict:
    """Count, p50/p95/p99 and max in milliseconds."""
    if not values:
        return {"n": 0}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 \
        else [values[0]] * 99
    return {"n": len(values), "p50_ms": round(1000 * cuts[49], 1),
            "p95_ms": round(1000 * cuts[94], 1), "p99_ms": round(1000 * cuts[98], 1),
            "max_ms": round(1000 * max(values), 1)}


def markdown(result: dict) -> list[str]:
    """The table for BENCHMARKS.md."""
    how = "back to back" if not result["think"] else \
        f"{result['think']:g} s of think time on average after each answer"
    lines = [f"Command: `{result['command']}` ({result['workers']} worker); {result['clients']} "
             f"clients for {result['seconds']:g} s over loopback, {how}.", "",
             "| requests | share | answered | busy (503) | errors | p50 | p95 | p99 | max | per s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in [*KINDS, "light", "heavy"]:
        lat = result["latency"][kind]
        share = f"{100 * KINDS[kind][0]:.0f}%" if kind in KINDS else "-"
        if lat["n"]:
            lines.append(f"| {kind} | {share} | {lat['n']} | {result['busy'].get(kind, 0)} | "
                         f"{result['errors_by_kind'].get(kind, 0)} | {lat['p50_ms']} ms | "
                         f"{lat['p95_ms']} ms | {lat['p99_ms']} ms | {lat['max_ms']} ms | "
                         f"{result['per_second'].get(kind, '-')} |")
    memory = result["memory"]
    lines += ["", f"Throughput {result['requests_per_second']} answers/s. Server PSS (master + "
                  f"workers): {memory['start_total_pss_mib']:.0f} MiB at the start, "
                  f"{memory['end_total_pss_mib']:.0f} MiB at the end, "
                  f"{memory['peak_total_pss_mib']:.0f} MiB at the peak."]
    return lines


def main(argv: list[str] | None = None) -> int:
    from pipelines.core import locations

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean seconds a client waits after each answer (0: back to back)")
    parser.add_argument("--timeout", type=float, default=120, help="client timeout per request")
    parser.add_argument("--data", type=Path, default=locations.data_dir(__import__("os").environ))
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()

    tally = Tally()
    with RenderServer() as server:
        kinds = requests(server.auth, args.data)
        start_memory = snapshot(server.master)
        with PeakSampler(server.master, every=0.5) as sampler:
            until = time.perf_counter() + args.seconds
            threads = [threading.Thread(target=client, args=(
                server.port, kinds, until, seed, args.think, tally, args.timeout))
                for seed in range(args.clients)]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
        end_memory = snapshot(server.master)
        workers = server.workers()
    groups = {"light": [k for k in KINDS if KINDS[k][1]],
              "heavy": [k for k in KINDS if not KINDS[k][1]]}
    latency = {k: percentiles(v) for k, v in tally.latencies.items()}
    for group, members in groups.items():
        latency[group] = percentiles([x for k in members for x in tally.latencies[k]])
    errors_by_kind = Counter()
    for key, n in tally.errors.items():
        errors_by_kind[key.split(":")[0]] += n
    answered = sum(len(v) for v in tally.latencies.values())
    result = {
        "command": start_command(), "workers": workers, "clients": args.clients,
        "seconds": args.seconds, "think": args.think, "kinds": KINDS,
        "requests": answered, "requests_per_second": round(answered / elapsed, 1),
        "per_second": {k: round(len(v) / elapsed, 1) for k, v in tally.latencies.items()},
        "errors": dict(tally.errors), "n_errors": sum(tally.errors.values()),
        "errors_by_kind": dict(errors_by_kind), "busy": dict(tally.busy),
        "latency": latency,
        "memory": {"start_total_pss_mib": start_memory["total_pss_mib"],
                   "end_total_pss_mib": end_memory["total_pss_mib"],
                   "peak_total_pss_mib": sampler.peak["total_pss_mib"],
                   "start": start_memory, "end": end_memory},
    }
    emit("load_test", result, markdown(result), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

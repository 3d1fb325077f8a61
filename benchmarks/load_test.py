"""Load test: concurrent clients against the server as render.yaml starts it, over loopback.

Run: ``python -m benchmarks.load_test [--clients 50] [--seconds 60] [--csv-share 0.2]
[--markdown PATH]`` (JSON on stdout and in ``benchmarks/out/load_test.json``).

Starts render.yaml's start command (see ``benchmarks.server_memory.RenderServer``), loads the
models in every worker, then runs ``--clients`` threads for ``--seconds``, each sending
requests back to back on its own keep-alive connection: a single-row JSON predict, or (with
probability ``--csv-share``) a 1,000-row generated CSV upload for the results CSV. Reports
errors (any status but 200, or a failed connection), p50/p95/p99 latency per kind and
overall, throughput, and the server's summed PSS at the start, at the end and at its peak.
The issue-6 target: zero errors with 50 clients for 60 s.
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

from benchmarks.common import add_markdown_option, emit, log_to_stderr, sample_model, sensor_csv
from benchmarks.server_memory import PeakSampler, RenderServer, multipart, snapshot, start_command

logger = logging.getLogger(__name__)

PREDICT = "/api/v1/sensor/predict"


@dataclass
class Request:
    """One kind of request: method path, body and headers."""

    kind: str
    path: str
    body: bytes
    headers: dict


@dataclass
class Tally:
    """Latencies and errors, per kind, shared by the client threads."""

    latencies: dict = field(default_factory=lambda: {"json": [], "csv": []})
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if error:
                self.errors[f"{kind}: {error}"] += 1


def requests(model: dict, csv_rows: int, auth: dict) -> dict[str, Request]:
    """The two request kinds, from generated wafers, with ``auth`` (a token's header)."""
    from pipelines.sensor.samples import sensor_sample
    from pipelines.sensor.schema import SENSOR_COLUMNS

    one = sensor_sample(model, n_rows=1, seed=3)[SENSOR_COLUMNS].iloc[0].tolist()
    body = json.dumps({"instances": [[None if v != v else v for v in one]]}).encode()
    upload, content_type = multipart(sensor_csv(csv_rows, seed=4, model=model))
    return {"json": Request("json", PREDICT, body, {"Content-Type": "application/json", **auth}),
            "csv": Request("csv", f"{PREDICT}?format=csv", upload,
                           {"Content-Type": content_type, **auth})}


def send(conn: http.client.HTTPConnection, request: Request) -> str | None:
    """One request on ``conn``; None when it answered 200, else what went wrong."""
    conn.request("POST", request.path, body=request.body, headers=request.headers)
    response = conn.getresponse()
    response.read()
    return None if response.status == 200 else f"HTTP {response.status}"


def client(port: int, kinds: dict[str, Request], csv_share: float, until: float, seed: int,
           tally: Tally, timeout: float) -> None:
    """Send requests back to back until ``until``; reconnect after a failure."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    while time.perf_counter() < until:
        request = kinds["csv" if rng.random() < csv_share else "json"]
        start = time.perf_counter()
        try:
            error = send(conn, request)
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        tally.add(request.kind, time.perf_counter() - start, error)
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
    lines = [f"Command: `{result['command']}`; {result['clients']} clients for "
             f"{result['seconds']} s over loopback, {100 * result['csv_share']:.0f}% "
             f"{result['csv_rows']}-row CSV uploads, the rest single-row JSON.", "",
             "| requests | errors | p50 | p95 | p99 | max |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind in ("all", "json", "csv"):
        lat = result["latency"][kind]
        errors = sum(n for k, n in result["errors"].items() if kind == "all" or k.startswith(kind))
        if lat["n"]:
            lines.append(f"| {kind}: {lat['n']} | {errors} | {lat['p50_ms']} ms | "
                         f"{lat['p95_ms']} ms | {lat['p99_ms']} ms | {lat['max_ms']} ms |")
    memory = result["memory"]
    lines += ["", f"Throughput {result['requests_per_second']} requests/s. Server PSS (master + "
                  f"workers): {memory['start_total_pss_mib']:.0f} MiB at the start, "
                  f"{memory['end_total_pss_mib']:.0f} MiB at the end, "
                  f"{memory['peak_total_pss_mib']:.0f} MiB at the peak."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--csv-share", type=float, default=0.2,
                        help="share of requests that upload a CSV (0.2)")
    parser.add_argument("--csv-rows", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=120, help="client timeout per request")
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()

    tally = Tally()
    with RenderServer() as server:
        kinds = requests(sample_model(), args.csv_rows, server.auth)
        start_memory = snapshot(server.master)
        with PeakSampler(server.master, every=0.5) as sampler:
            until = time.perf_counter() + args.seconds
            threads = [threading.Thread(target=client, args=(
                server.port, kinds, args.csv_share, until, seed, tally, args.timeout))
                for seed in range(args.clients)]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
        end_memory = snapshot(server.master)
        workers = server.workers()
    every = tally.latencies["json"] + tally.latencies["csv"]
    result = {
        "command": start_command(), "workers": workers, "clients": args.clients,
        "seconds": args.seconds, "csv_share": args.csv_share, "csv_rows": args.csv_rows,
        "requests": len(every), "requests_per_second": round(len(every) / elapsed, 1),
        "errors": dict(tally.errors), "n_errors": sum(tally.errors.values()),
        "latency": {"all": percentiles(every), "json": percentiles(tally.latencies["json"]),
                    "csv": percentiles(tally.latencies["csv"])},
        "memory": {"start_total_pss_mib": start_memory["total_pss_mib"],
                   "end_total_pss_mib": end_memory["total_pss_mib"],
                   "peak_total_pss_mib": sampler.peak["total_pss_mib"],
                   "start": start_memory, "end": end_memory},
    }
    emit("load_test", result, markdown(result), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

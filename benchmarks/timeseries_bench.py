"""Time-series serving benchmarks: windows per second for each model, in process and through
the API, and the server's memory with every ready module's models loaded.

Run: ``python -m benchmarks.timeseries_bench`` (in process) and
``python -m benchmarks.timeseries_bench --api`` (HTTP); each prints one JSON document and
writes it to ``benchmarks/out/timeseries[_api].json``. Windows are real: every full 30-cycle
window of the release's validation engines of train_FD001 (``--data``), standardised by the
release's scaler (the figures in process are the model alone; the API figures include JSON
parsing, checks, scaling and the event writes).

- in process: ``detector.score`` on ``--windows`` windows per model (median of ``--repeats``),
  and one window per call (median latency over ``--single`` calls), with ``--threads`` threads;
- ``--api``: the whole server started as render.yaml starts it
  (``benchmarks.server_memory.RenderServer``): ``POST /api/v1/timeseries/detect/batch`` with
  ``--api-batch`` windows per call (windows per second per model), one window through
  ``/detect`` (median and p95 latency), and the server's summed PSS (idle, after loading every
  ready module's models, peak while scoring; budget 512 MiB).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from pipelines.core import locations

ROOT = Path(__file__).resolve().parent.parent


def validation_windows(data: Path, artifacts: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Raw (windows, 30, input sensors) and standardised windows of the validation engines."""
    from pipelines.timeseries.ingest import find_data, read_cmapss, subset
    from pipelines.timeseries.transform import machine_windows, standardise

    evaluation = json.loads((artifacts / "timeseries" / "evaluation.json").read_text())
    scaler = json.loads((artifacts / "timeseries" / "scaler.json").read_text())
    series = subset(read_cmapss(find_data(data)), evaluation["val_machines"])
    raw = []
    for _, rows in series.groups():
        windows, padded = machine_windows(series.values[rows], evaluation["window"])
        raw.append(windows[~padded])
    raw_windows = np.concatenate(raw)
    X = np.stack([standardise(scaler, w) for w in raw_windows])
    return raw_windows, X, scaler


def in_process(args) -> dict:
    from pipelines.timeseries.predict import TimeseriesPredictor

    predictor = TimeseriesPredictor(args.artifacts / "timeseries", n_jobs=args.threads)
    _, X, _ = validation_windows(args.data, args.artifacts)
    X = X[np.arange(args.windows) % len(X)]
    out = {}
    for name, model in predictor.models.items():
        model.detector.score(X[:64])  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.detector.score(X)
            times.append(time.perf_counter() - start)
        single = []
        for i in range(args.single):
            start = time.perf_counter()
            model.detector.score(X[i:i + 1])
            single.append(time.perf_counter() - start)
        out[name] = {"windows_per_s": round(len(X) / statistics.median(times)),
                     "single_ms_median": round(1000 * statistics.median(single), 3)}
    return {"windows": len(X), "threads": args.threads, "models": out,
            "torch_imported_by_serving": "torch" in sys.modules,
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def api(args) -> dict:
    from benchmarks.server_memory import PeakSampler, RenderServer, post, snapshot

    raw, _, _ = validation_windows(args.data, args.artifacts)
    models = json.loads((args.artifacts / "timeseries" / "manifest.json").read_text())["models"]
    with RenderServer() as server:
        loaded = snapshot(server.master)
        batch_url = server.url + "/api/v1/timeseries/detect/batch"
        one_url = server.url + "/api/v1/timeseries/detect"
        per_model = {}
        with PeakSampler(server.master) as sampler:
            for name in models:
                body = json.dumps({"model": name, "windows": [
                    {"machine_id": f"e{i}", "window": raw[i % len(raw)].tolist()}
                    for i in range(args.api_batch)]}).encode()
                post(batch_url, body, "application/json", server.auth)  # warm-up
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    status, answer = post(batch_url, body, "application/json", server.auth)
                    times.append(time.perf_counter() - start)
                    assert status == 200, answer[:300]
                per_model[name] = {"batch_windows_per_s": round(args.api_batch /
                                                                statistics.median(times))}
            singles = [json.dumps({"machine_id": "e", "window": raw[i].tolist()}).encode()
                       for i in range(args.single)]
            times = []
            for body in singles:
                start = time.perf_counter()
                status, _ = post(one_url, body, "application/json", server.auth)
                times.append(time.perf_counter() - start)
                assert status == 200
        times.sort()
        return {"start_command": "render.yaml startCommand", "workers": server.workers(),
                "batch_size": args.api_batch, "models": per_model,
                "single_detect_ms": {"calls": len(times),
                                     "median": round(1000 * statistics.median(times), 2),
                                     "p95": round(1000 * times[int(0.95 * len(times)) - 1], 2)},
                "memory_mib": {"idle_total_pss": server.idle["total_pss_mib"],
                               "models_loaded_total_pss": loaded["total_pss_mib"],
                               "peak_total_pss": sampler.peak["total_pss_mib"],
                               "budget": 512},
                "load_avg_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=locations.data_dir(os.environ))
    parser.add_argument("--artifacts", type=Path, default=locations.artifacts_dir(os.environ))
    parser.add_argument("--windows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--api", action="store_true", help="the HTTP figures and memory")
    parser.add_argument("--api-batch", type=int, default=500)
    args = parser.parse_args(argv)
    results = api(args) if args.api else in_process(args)
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(exist_ok=True)
    name = "timeseries_api.json" if args.api else "timeseries.json"
    (out_dir / name).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

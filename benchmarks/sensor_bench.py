"""Sensor serving benchmarks: CSV throughput (and its ratio to pandas.read_csv), single-row
latency, worker memory.

Run: ``python -m benchmarks.sensor_bench [--markdown PATH]`` (JSON on stdout and in
``benchmarks/out/sensor.json``). Uses the committed artifacts and the in-process Flask test
client, so the figures cover parsing, validation, scoring, explanations and the results CSV,
but not the network. The 10,000-row upload -> results CSV time is also given as a ratio to
``pandas.read_csv`` of the same bytes, timed the same way (issue 6: under 1 s, within 2x).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, add_markdown_option, emit, log_to_stderr


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_memory() -> dict:
    """RSS of a fresh process after creating the app and loading the models (like a worker)."""
    code = (
        "from benchmarks.sensor_bench import rss_mib\n"
        "import json\n"
        "before = rss_mib()\n"
        "from webapp import create_app\n"
        "from webapp.predictors import get_predictor\n"
        "app = create_app({'DATABASE_URL': 'sqlite://'})\n"
        "after_app = rss_mib()\n"
        "with app.app_context():\n"
        "    get_predictor('sensor')\n"
        "import sys\n"
        "print(json.dumps({'rss_python_mib': before, 'rss_app_mib': after_app,\n"
        "                  'rss_models_loaded_mib': rss_mib(), 'torch_imported': 'torch' in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_contributions(predictor, payload: bytes, repeats: int) -> dict:
    """The classifier's per-sensor contributions for one 2,000-row chunk of ``payload``: XGBoost's
    own pass (``pred_contribs`` with ``approx_contribs``, as before issue 21) against the same
    numbers from each row's leaves (:mod:`pipelines.core.xgb_paths`), alternated; medians."""
    import pandas as pd
    import xgboost as xgb

    from pipelines.core.xgb_paths import path_contributions

    detector = predictor.models[predictor.classifier].detector
    chunk = pd.read_csv(io.BytesIO(payload), nrows=2000).iloc[:, 1:].to_numpy(dtype=float)
    matrix = xgb.DMatrix(detector._features(chunk), nthread=detector.n_jobs)
    paths = path_contributions(detector.booster_)
    own, leaves = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        expected = detector.booster_.predict(matrix, pred_contribs=True, approx_contribs=True)
        own.append(time.perf_counter() - start)
        start = time.perf_counter()
        got = paths(matrix)
        leaves.append(time.perf_counter() - start)
    assert (got == expected).all(), "the leaves' contributions differ from XGBoost's"
    return {"contributions_ms_xgboost_pass": round(1000 * statistics.median(own), 1),
            "contributions_ms_from_leaves": round(1000 * statistics.median(leaves), 1)}


def markdown(results: dict, args: argparse.Namespace) -> list[str]:
    """The table for BENCHMARKS.md."""
    return [
        "| measure | result | target |", "| --- | --- | --- |",
        f"| {args.rows} rows x 590 sensors ({results['csv_mb']} MB CSV) upload -> results CSV, "
        f"median of {args.repeats} | {results['csv_seconds_median']} s "
        f"({results['rows_per_second']} rows/s) | < 1 s |",
        f"| the same, as a ratio to `pandas.read_csv` of the same bytes "
        f"({results['read_csv_seconds_median']} s) | {results['ratio_to_read_csv']}x | <= 2x |",
        f"| per-sensor contributions of one 2,000-row chunk: XGBoost's own pass -> from the "
        f"leaves, median of {args.repeats} | {results['contributions_ms_xgboost_pass']} -> "
        f"{results['contributions_ms_from_leaves']} ms | - |",
        f"| single-row JSON predict, median of {args.single} | "
        f"{results['single_row_ms_median']} ms (p95 {results['single_row_ms_p95']} ms) | < 20 ms |",
        f"| worker RSS after loading models | {results['rss_models_loaded_mib']:.0f} MiB "
        f"(app only {results['rss_app_mib']:.0f} MiB; torch imported: "
        f"{results['torch_imported']}) | - |"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--single", type=int, default=200, help="single-row requests")
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    # as in a gunicorn worker (webapp/gunicorn_conf.post_fork): OpenMP threads wait passively
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    log_to_stderr()

    import pandas as pd

    from pipelines.sensor.samples import sensor_sample
    from webapp import create_app
    from webapp.db import upgrade
    from webapp.predictors import get_predictor

    with tempfile.TemporaryDirectory() as tmp:
        upgrade(f"sqlite:///{tmp}/bench.sqlite")
        # no accounts (FABLENS_AUTH=open): the test client calls from loopback, as the local
        # engineer; a bearer token's check is not what this measures
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite", "AUTH": "open"})
        client = app.test_client()
        with app.app_context():
            predictor = get_predictor("sensor")
            sample_model = predictor.sample_model
        frame = sensor_sample(sample_model, n_rows=args.rows, seed=1)
        payload = frame.to_csv(index=False).encode()

        def post_csv():
            response = client.post("/api/v1/sensor/predict?format=csv",
                                   data={"file": (io.BytesIO(payload), "bench.csv")},
                                   content_type="multipart/form-data")
            assert response.status_code == 200, response.data[:300]
            return response.data

        post_csv()  # warm-up: loads models
        csv_times, read_times = [], []
        for _ in range(args.repeats):  # interleaved, so machine load hits both alike
            start = time.perf_counter()
            body = post_csv()
            csv_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            pd.read_csv(io.BytesIO(payload))
            read_times.append(time.perf_counter() - start)
        rows_back = len(pd.read_csv(io.BytesIO(body)))
        assert rows_back == args.rows, f"results CSV has {rows_back} rows, expected {args.rows}"

        one = frame.iloc[:1, 1:].to_numpy().tolist()
        one = [[None if v != v else v for v in one[0]]]
        single = []
        for _ in range(args.single):
            start = time.perf_counter()
            response = client.post("/api/v1/sensor/predict", json={"instances": one})
            single.append(time.perf_counter() - start)
            assert response.status_code == 200
        contributions = measure_contributions(predictor, payload, args.repeats)
    single_sorted = sorted(single)
    results = {
        "rows": args.rows,
        "csv_mb": round(len(payload) / 1e6, 1),
        "csv_seconds_median": round(statistics.median(csv_times), 3),
        "csv_seconds_all": [round(t, 3) for t in csv_times],
        "rows_per_second": round(args.rows / statistics.median(csv_times)),
        "read_csv_seconds_median": round(statistics.median(read_times), 3),
        "ratio_to_read_csv": round(statistics.median(csv_times) / statistics.median(read_times), 2),
        **contributions,
        "single_row_ms_median": round(1000 * statistics.median(single), 2),
        "single_row_ms_p95": round(1000 * single_sorted[int(0.95 * len(single)) - 1], 2),
        "cpu_count": os.cpu_count(),
        "load_average": [round(v, 2) for v in os.getloadavg()],  # the 2 cores are shared
        **measure_memory(),
    }
    emit("sensor", results, markdown(results, args), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Wafer-map serving benchmarks, in process: batch throughput, single-map latency, ONNX vs torch.

Run: ``python -m benchmarks.wafermap_bench`` (prints one JSON document; also written to
``benchmarks/out/wafermap.json``). Uses the committed release (``artifacts/wafermap``) and
real maps from the val split of ``wafer_maps_orig.npz`` (``--data``), at their original
sizes, so the figures include the resize to 64 x 64 and the result records.

- ``batch``: ``WafermapPredictor.predict`` on ``--maps`` maps, maps per second (median of
  ``--repeats``), with ``--threads`` onnxruntime threads;
- ``single``: one map per call, median and p95 latency over ``--single`` calls;
- ``onnx_vs_torch``: the same network on the same 64 x 64 batch, onnxruntime against torch
  eager (in a separate process, so the serving figures above never have torch loaded), and
  the largest probability difference measured when the release was trained;
- ``api`` (``--api``): the whole server started as render.yaml starts it (every ready module's
  models loaded; ``benchmarks.server_memory.RenderServer``): one map through HTTP (JSON, median
  and p95 latency over ``--single`` calls; target 20 ms), batches of ``--api-batch`` maps as
  JSON and as one npz upload (maps per second), and the server's memory (summed PSS of master
  and workers, idle, after loading and at the peak while scoring; budget 512 MiB).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pipelines.core import locations

ROOT = Path(__file__).resolve().parent.parent


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_maps(data: Path, n: int):
    """``n`` val maps at original size (cycled if the split is smaller)."""
    from pipelines.wafermap.ingest import read_npz
    from pipelines.wafermap.ingest import find_data

    maps = read_npz(find_data(data), split="val").maps
    return [maps[i % len(maps)] for i in range(n)]


def torch_comparison(artifacts: Path, data: Path, n: int, threads: int, repeats: int) -> dict:
    """ONNX vs torch eager on the same resized batch (run in its own process).

    The release ships only the ONNX graph (batch norm folded into the convolutions), so torch
    runs the same architecture with fresh weights: the same computation, for timing. How far
    the two agree with the trained weights is measured at training time
    (``torch_onnx_max_abs_diff`` in ``evaluation.json``) and by the tests.
    """
    import numpy as np
    import torch

    from pipelines.core.artifacts import load_bundle
    from pipelines.wafermap.transform import resize_map

    torch.set_num_threads(threads)
    detector, _ = load_bundle(artifacts / "wafermap" / "cnn", n_jobs=threads)
    X = np.stack([resize_map(m) for m in load_maps(data, n)])
    module = detector._build().eval()

    def run_torch():
        with torch.no_grad():
            return torch.cat([module(torch.from_numpy(X[s:s + 1024]).float())
                              for s in range(0, len(X), 1024)]).numpy()

    def timed(fn):
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    onnx_s, torch_s = timed(lambda: detector.score(X)), timed(run_torch)
    evaluation = json.loads((artifacts / "wafermap" / "evaluation.json").read_text())
    return {"maps": n, "onnx_maps_per_s": round(n / onnx_s),
            "torch_eager_maps_per_s": round(n / torch_s),
            "onnx_speedup": round(torch_s / onnx_s, 2),
            "trained_max_abs_diff": evaluation.get("torch_onnx_max_abs_diff")}


def api_benchmark(data: Path, n_single: int, batch: int, repeats: int) -> dict:
    """One map and batches through HTTP on the server as render.yaml starts it, and its memory."""
    import io

    from benchmarks.server_memory import PeakSampler, RenderServer, multipart, post, snapshot
    from pipelines.wafermap.ingest import write_npz

    maps = load_maps(data, max(batch, n_single))
    url_path = "/api/v1/wafermap/predict"
    with RenderServer() as server:
        loaded = snapshot(server.master)
        url = server.url + url_path
        one = [json.dumps({"maps": [maps[i].tolist()]}).encode() for i in range(n_single)]
        for body in one[:5]:  # warm-up
            post(url, body, "application/json", server.auth)
        times = []
        for body in one:
            start = time.perf_counter()
            status, _ = post(url, body, "application/json", server.auth)
            times.append(time.perf_counter() - start)
            assert status == 200, status
        times.sort()
        json_batch = json.dumps({"maps": [m.tolist() for m in maps[:batch]]}).encode()
        buffer = io.BytesIO()
        write_npz(buffer, maps[:batch], layout="flat")
        npz_body, npz_type = multipart(buffer.getvalue(), "batch.npz")
        batch_s = {"json": [], "npz": []}
        with PeakSampler(server.master) as sampler:
            for _ in range(repeats):
                for kind, body, ctype in (("json", json_batch, "application/json"),
                                          ("npz", npz_body, npz_type)):
                    start = time.perf_counter()
                    status, answer = post(url, body, ctype, server.auth)
                    batch_s[kind].append(time.perf_counter() - start)
                    assert status == 200, answer[:300]
        after = snapshot(server.master)
        return {
            "start_command": "render.yaml startCommand", "workers": server.workers(),
            "single_map_ms": {"calls": n_single, "median": round(1000 * statistics.median(times), 2),
                              "p95": round(1000 * times[int(0.95 * len(times)) - 1], 2),
                              "target_median": 20},
            "batch": {"maps": batch, "json_bytes": len(json_batch), "npz_bytes": len(npz_body),
                      **{f"{k}_maps_per_s": round(batch / statistics.median(v))
                         for k, v in batch_s.items()}},
            "memory_mib": {"idle_total_pss": server.idle["total_pss_mib"],
                           "models_loaded_total_pss": loaded["total_pss_mib"],
                           "after_batches_total_pss": after["total_pss_mib"],
                           "peak_total_pss": sampler.peak["total_pss_mib"],
                           "peak_total_rss": sampler.peak["total_rss_mib"],
                           "budget": 512},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=locations.data_dir(os.environ),
                        help="folder holding wm811k/ (default: $FABLENS_DATA_DIR or "
                             "../shared/data)")
    parser.add_argument("--artifacts", type=Path, default=locations.artifacts_dir(os.environ))
    parser.add_argument("--maps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-part", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api", action="store_true",
                        help="only the HTTP figures: the server as render.yaml starts it")
    parser.add_argument("--api-batch", type=int, default=1000)
    args = parser.parse_args(argv)

    if args.api:
        results = {"api": api_benchmark(args.data, args.single, args.api_batch, args.repeats),
                   "load_avg_1min": round(os.getloadavg()[0], 2)}
        out_dir = ROOT / "benchmarks" / "out"
        out_dir.mkdir(exist_ok=True)
        (out_dir / "wafermap_api.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
        return 0

    if args.torch_part:
        print(json.dumps(torch_comparison(args.artifacts, args.data, min(args.maps, 4096),
                                          args.threads, args.repeats)))
        return 0

    from pipelines.wafermap.predict import WafermapPredictor

    before = rss_mib()
    predictor = WafermapPredictor(args.artifacts / "wafermap", n_jobs=args.threads)
    loaded = rss_mib()
    maps = load_maps(args.data, args.maps)
    print(f"{len(maps)} maps loaded; benchmarking", file=sys.stderr)
    predictor.predict(maps[:256])  # warm-up
    batch, cpu = [], []
    for _ in range(args.repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        records = predictor.predict(maps)
        batch.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert len(records) == len(maps)
    single = []
    for i in range(args.single):
        start = time.perf_counter()
        predictor.predict([maps[i]])
        single.append(time.perf_counter() - start)
    start = time.perf_counter()
    predictor.predict(maps[:1], saliency=True)
    saliency_ms = 1000 * (time.perf_counter() - start)
    single.sort()
    results = {
        "device": "cpu", "cpu_count": os.cpu_count(), "threads": args.threads,
        "batch": {"maps": len(maps), "seconds_median": round(statistics.median(batch), 3),
                  "maps_per_s": round(len(maps) / statistics.median(batch)),
                  "maps_per_cpu_s": round(len(maps) / statistics.median(cpu)),
                  "target_maps_per_s": 2000},
        "single": {"calls": args.single, "ms_median": round(1000 * statistics.median(single), 2),
                   "ms_p95": round(1000 * single[int(0.95 * len(single)) - 1], 2)},
        "saliency_one_map_ms": round(saliency_ms, 1),
        "rss_mib": {"before_load": round(before), "model_loaded": round(loaded),
                    "after_batch": round(rss_mib())},
        "torch_imported_by_serving": "torch" in sys.modules,
        "load_avg_1min": round(os.getloadavg()[0], 2),  # the 2 cores are shared
    }
    out = subprocess.run([sys.executable, "-m", "benchmarks.wafermap_bench", "--torch-part",
                          "--data", str(args.data), "--artifacts", str(args.artifacts),
                          "--maps", str(args.maps), "--threads", str(args.threads),
                          "--repeats", str(args.repeats)],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode == 0:
        results["onnx_vs_torch"] = json.loads(out.stdout.strip().splitlines()[-1])
    else:
        results["onnx_vs_torch"] = {"error": out.stderr.strip().splitlines()[-1:]}
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "wafermap.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

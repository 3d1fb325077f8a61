"""Inspection serving benchmarks, in process: images per second, single-image latency, ONNX
against torch eager, and (``--api``) the whole server's latency and memory.

Run: ``python -m benchmarks.inspection_bench`` (prints one JSON document; also written to
``benchmarks/out/inspection.json``), and ``python -m benchmarks.inspection_bench --api``
(``benchmarks/out/inspection_api.json``). Uses the committed release
(``artifacts/inspection``) and the real 256 x 256 bottle test photos (``--data``), decoded
from PNG each call, so the figures include decoding and the result records.

- ``models.<name>.batch``: ``InspectionPredictor.predict`` on ``--images`` photos, images per
  second (median of ``--repeats``), with ``--threads`` onnxruntime threads;
- ``models.<name>.single``: one photo per call (decode + score), median and p95 latency
  (target: 50 ms per 256 x 256 image on 2 cores);
- ``models.<name>.heatmap_single``: the same with the heatmap PNG made, as the page asks;
- ``onnx_vs_torch``: the same computation on the same batch, onnxruntime against torch eager,
  in a separate process (serving never has torch loaded). The radial model is rebuilt in torch
  from its stored per-radius parameters (the very model); the autoencoder's release holds only
  the ONNX graph, so torch runs its architecture with fresh weights (the same computation);
- ``api`` (``--api``): the server as render.yaml starts it, every ready module's models loaded
  (``benchmarks.server_memory.RenderServer``): one photo per HTTP call (median and p95), a
  batch upload, and the server's summed PSS idle, loaded and at the peak (budget 512 MiB).
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


def photo_bytes(data: Path, n: int) -> list[tuple[str, bytes]]:
    """``n`` test photos (PNG bytes) from the bottle category, cycled."""
    from pipelines.inspection.ingest import image_files
    from pipelines.inspection.ingest import find_category

    test = find_category(data) / "test"
    files = [p for kind in sorted(test.iterdir()) if kind.is_dir() for p in image_files(kind)]
    return [(files[i % len(files)].name, files[i % len(files)].read_bytes()) for i in range(n)]


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_comparison(artifacts: Path, data: Path, n: int, threads: int, repeats: int) -> dict:
    """ONNX vs torch eager on the same batch of decoded photos (run in its own process)."""
    import numpy as np
    import torch

    from pipelines.core.artifacts import load_bundle
    from pipelines.inspection.detectors.radial import build_features
    from pipelines.inspection.ingest import decode_image

    torch.set_num_threads(threads)
    X = np.stack([decode_image(b, name).pixels for name, b in photo_bytes(data, n)]
                 ).astype(np.float32)
    out = {}
    for name in ("radial", "autoencoder"):
        folder = artifacts / "inspection" / name
        if not folder.is_dir():
            continue
        detector, manifest = load_bundle(folder, n_jobs=threads)
        if name == "radial":
            stored = np.load(folder / detector.PARAMS_FILE)
            features = build_features(detector.input_shape_[0], detector.work_size,
                                      detector.sigmas, detector.oriented)
            module = detector._scorer(features, dict(stored)).eval()
            same = "the released model rebuilt from radial.npz"
        else:
            module = detector._build().eval()
            same = "the same architecture with fresh weights (timing only)"

        def run_torch():
            with torch.no_grad():
                return [module(torch.from_numpy(X[s:s + 16])) for s in range(0, len(X), 16)]

        onnx_s, torch_s = timed(lambda: detector.score(X), repeats), timed(run_torch, repeats)
        entry = {"images": n, "onnx_images_per_s": round(n / onnx_s, 1),
                 "torch_eager_images_per_s": round(n / torch_s, 1),
                 "onnx_speedup": round(torch_s / onnx_s, 2), "torch_model": same}
        if name == "radial":
            with torch.no_grad():
                scores, maps = module(torch.from_numpy(X[:8]))
            e = detector.explain(X[:8])
            entry["max_abs_diff"] = {"scores": float(np.abs(scores.numpy() - e.scores).max()),
                                     "maps": float(np.abs(maps.numpy() - e.maps).max())}
        out[name] = entry
    return out


def multipart_files(files: list[tuple[str, bytes]], fields: dict | None = None
                    ) -> tuple[bytes, str]:
    """A multipart body with every file in the field ``file`` and ``fields``."""
    boundary = "fablensbench"
    parts = []
    for name, data in files:
        parts.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                      f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode()
                     + data + b"\r\n")
    for key, value in (fields or {}).items():
        parts.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n"
                      f"{value}\r\n").encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def api_benchmark(data: Path, n_single: int, batch: int, repeats: int) -> dict:
    """One photo and batches through HTTP on the server as render.yaml starts it; memory."""
    from benchmarks.server_memory import PeakSampler, RenderServer, post, snapshot

    photos = photo_bytes(data, max(batch, n_single))
    with RenderServer() as server:
        loaded = snapshot(server.master)
        url = server.url + "/api/v1/inspection/predict"
        singles = [multipart_files([p]) for p in photos[:n_single]]
        for body, ctype in singles[:5]:
            post(url, body, ctype, server.auth)
        times = []
        with PeakSampler(server.master) as sampler:
            for body, ctype in singles:
                start = time.perf_counter()
                status, answer = post(url, body, ctype, server.auth)
                times.append(time.perf_counter() - start)
                assert status == 200, answer[:300]
            body, ctype = multipart_files(photos[:batch], {"heatmap": "true"})
            batch_s = []
            for _ in range(repeats):
                start = time.perf_counter()
                status, answer = post(url, body, ctype, server.auth)
                batch_s.append(time.perf_counter() - start)
                assert status == 200, answer[:300]
        after = snapshot(server.master)
        times.sort()
        return {
            "start_command": "render.yaml startCommand", "workers": server.workers(),
            "single_image_ms": {"calls": n_single,
                                "median": round(1000 * statistics.median(times), 1),
                                "p95": round(1000 * times[int(0.95 * len(times)) - 1], 1)},
            "batch_with_heatmaps": {"images": batch,
                                    "images_per_s": round(batch / statistics.median(batch_s), 1)},
            "memory_mib": {"idle_total_pss": server.idle["total_pss_mib"],
                           "models_loaded_total_pss": loaded["total_pss_mib"],
                           "after_requests_total_pss": after["total_pss_mib"],
                           "peak_total_pss": sampler.peak["total_pss_mib"],
                           "peak_total_rss": sampler.peak["total_rss_mib"], "budget": 512},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=locations.data_dir(os.environ))
    parser.add_argument("--artifacts", type=Path, default=locations.artifacts_dir(os.environ))
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--single", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-part", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api", action="store_true",
                        help="only the HTTP figures: the server as render.yaml starts it")
    parser.add_argument("--api-batch", type=int, default=20)
    args = parser.parse_args(argv)
    out_dir = ROOT / "benchmarks" / "out"
    out_dir.mkdir(exist_ok=True)

    if args.api:
        results = {"api": api_benchmark(args.data, args.single, args.api_batch, args.repeats),
                   "load_avg_1min": round(os.getloadavg()[0], 2)}
        (out_dir / "inspection_api.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
        return 0
    if args.torch_part:
        print(json.dumps(torch_comparison(args.artifacts, args.data, min(args.images, 64),
                                          args.threads, args.repeats)))
        return 0

    from pipelines.inspection.ingest import decode_image
    from pipelines.inspection.predict import InspectionPredictor, heatmap_rgba, png_bytes

    predictor = InspectionPredictor(args.artifacts / "inspection", n_jobs=args.threads)
    photos = photo_bytes(args.data, args.images)
    results = {"device": "cpu", "cpu_count": os.cpu_count(), "threads": args.threads,
               "default_model": predictor.default_model, "models": {}}
    for name in predictor.models:
        def batch_run():
            images = [decode_image(b, n) for n, b in photos]
            return predictor.predict(images, model=name)

        batch_s = timed(batch_run, args.repeats)
        single, heat = [], []
        for i in range(args.single):
            n, b = photos[i % len(photos)]
            start = time.perf_counter()
            predictor.predict([decode_image(b, n)], model=name)
            single.append(time.perf_counter() - start)
            start = time.perf_counter()
            record = predictor.predict([decode_image(b, n)], model=name, maps=True)[0]
            png_bytes(heatmap_rgba(record["map"], record["threshold"]))
            heat.append(time.perf_counter() - start)
        single.sort()
        heat.sort()
        results["models"][name] = {
            "batch": {"images": len(photos), "seconds_median": round(batch_s, 3),
                      "images_per_s": round(len(photos) / batch_s, 1)},
            "single_ms": {"calls": args.single,
                          "median": round(1000 * statistics.median(single), 1),
                          "p95": round(1000 * single[int(0.95 * len(single)) - 1], 1),
                          "target": 50},
            "heatmap_single_ms": {"median": round(1000 * statistics.median(heat), 1)}}
        print(f"{name}: {results['models'][name]}", file=sys.stderr)
    results["torch_imported_by_serving"] = "torch" in sys.modules
    results["load_avg_1min"] = round(os.getloadavg()[0], 2)
    out = subprocess.run([sys.executable, "-m", "benchmarks.inspection_bench", "--torch-part",
                          "--data", str(args.data), "--artifacts", str(args.artifacts),
                          "--images", str(args.images), "--threads", str(args.threads),
                          "--repeats", str(args.repeats)],
                         cwd=ROOT, capture_output=True, text=True)
    results["onnx_vs_torch"] = json.loads(out.stdout.strip().splitlines()[-1]) \
        if out.returncode == 0 else {"error": out.stderr.strip().splitlines()[-1:]}
    (out_dir / "inspection.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

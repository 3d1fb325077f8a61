"""What keeping a run's items for the review queue costs a prediction.

Run: ``python -m benchmarks.review_capture [--requests 50] [--markdown PATH]`` (JSON on stdout
and in ``benchmarks/out/review_capture.json``).

Through the Flask test client on a fresh SQLite file, ``--requests`` inspection predicts of one
photo (MVTec AD bottle test photos, each a different one, or generated ones without the data)
and as many wafer-map predicts of 50 maps (WM-811K's val maps, 50 new ones each time, or
synthetic ones), so every item is new and kept (the dearest case), alternating one
app with ``REVIEW_PER_RUN=200`` (every item kept) and one with ``REVIEW_PER_RUN=0`` (none), so
a busy machine slows both alike. Reports per module the median and mean time of a whole
predict each way, and the capture's own time (``webapp.annotation.capture``'s work after the
run is recorded: items built and stored), measured inside the request, wall and CPU.
"""
from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import add_markdown_option, emit, log_to_stderr

MAPS = 50  # maps in one wafer-map request


def photos(n: int) -> list[tuple[bytes, str]]:
    """``n`` different photos: MVTec AD bottle test photos (each as it is, then turned), or
    generated PNGs without the data."""
    from PIL import Image

    from pipelines.core import locations

    folder = locations.data_dir({}) / "mvtec" / "bottle" / "test"
    paths = sorted(folder.glob("*/*.png"))
    out = []
    for k in range(n):
        if paths:
            image = Image.open(paths[k % len(paths)]).convert("RGB").rotate(
                k // len(paths) * 90)
        else:
            image = Image.fromarray(np.random.default_rng(k).integers(
                0, 255, (900, 900, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        out.append((buffer.getvalue(), f"photo{k}.png"))
    return out


def map_batches(n: int, size: int) -> list[list[list[list[int]]]]:
    """``n`` batches of ``size`` different maps: WM-811K val maps, or synthetic ones
    without the data."""
    from pipelines.core import locations

    path = locations.data_dir({}) / "wm811k" / "wafer_maps_orig.npz"
    if path.exists():
        from pipelines.wafermap.ingest import read_npz

        maps = read_npz(path)
        picks = [i for i, s in enumerate(maps.split) if s == "val"][:n * size]
        grids = [np.asarray(maps.maps[i]).tolist() for i in picks]
    else:
        from pipelines.wafermap.examples import synthetic_map

        rng = np.random.default_rng(0)
        grids = [synthetic_map("Center", rng).tolist() for _ in range(n * size)]
    return [grids[k * size:(k + 1) * size] for k in range(n)]


def make_app(folder: Path, per_run: int):
    from webapp import create_app
    from webapp.db import upgrade

    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'fablens.sqlite'}"
    upgrade(url)
    return create_app({"TESTING": True, "DATABASE_URL": url, "REVIEW_PER_RUN": per_run,
                       "JOBS_DIR": str(folder / "jobs"), "MODEL_STORE": str(folder / "models")})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50)
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    from webapp.annotation import capture

    spent: list[float] = []  # wall time
    used: list[float] = []  # the thread's CPU time (steadier on a busy machine)
    original = capture.store.add_items

    def timed_add(*a, **k):
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*a, **k)
        finally:
            spent.append(time.perf_counter() - start)
            used.append(time.thread_time() - cpu)

    capture.store.add_items = timed_add  # the capture's work: items built and stored
    n = args.requests + 1
    pictures, batches = photos(n), map_batches(n, MAPS)

    def inspection(client, k):
        data, name = pictures[k]
        return client.post("/api/v1/inspection/predict", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(data), name)})

    def wafermap(client, k):
        return client.post("/api/v1/wafermap/predict", json={"maps": batches[k]})

    requests = {"inspection": inspection, "wafermap": wafermap}
    results: dict = {"requests": args.requests, "maps_per_request": MAPS}
    with tempfile.TemporaryDirectory() as tmp:
        clients = {p: make_app(Path(tmp) / str(p), p).test_client() for p in (200, 0)}
        for module, send in requests.items():
            for client in clients.values():  # warm: models loaded, first run recorded
                assert send(client, 0).status_code == 200
            times: dict[int, list[float]] = {200: [], 0: []}
            spent.clear()
            used.clear()
            for k in range(1, n):  # each request new items (each kept: the dearest case)
                for per_run, client in clients.items():
                    start = time.perf_counter()
                    response = send(client, k)
                    times[per_run].append(time.perf_counter() - start)
                    assert response.status_code == 200, response.get_json()
            results[module] = {
                f"per_run_{per_run}": {"median_ms": round(statistics.median(t) * 1000, 1),
                                 "mean_ms": round(statistics.mean(t) * 1000, 1)}
                for per_run, t in times.items()} | {
                "capture_median_ms": round(statistics.median(spent) * 1000, 2),
                "capture_mean_ms": round(statistics.mean(spent) * 1000, 2),
                "capture_cpu_median_ms": round(statistics.median(used) * 1000, 2)}
    markdown = ["| module | request | predict, items kept (median) | predict, none kept "
                "(median) | capture (median) | capture CPU (median) |",
                "|---|---|---:|---:|---:|---:|"]
    for module, what in (("inspection", "1 photo"), ("wafermap", f"{MAPS} maps")):
        r = results[module]
        markdown.append(f"| {module} | {what} | {r['per_run_200']['median_ms']} ms | "
                        f"{r['per_run_0']['median_ms']} ms | {r['capture_median_ms']} ms | "
                        f"{r['capture_cpu_median_ms']} ms |")
    emit("review_capture", results, markdown, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

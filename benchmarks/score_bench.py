"""Batch scoring on Dask: items per second on 1 and 2 workers per module, a month projected.

``python -m benchmarks.score_bench [--markdown PATH]`` (about five minutes on two cores).

For each module it writes a partitioned input under a temporary folder (never the repository),
starts a ``LocalCluster`` of 1, then 2 single-threaded worker processes, loads the release on
every worker first (so the figures are steady-state scoring, not model loading), and times
:func:`pipelines.core.batch.score` end to end: graph building, reading, scoring, writing every
results file (CSV) and the summary. Inputs:

- sensor: ``--sensor-rows`` generated wafers (``pipelines.sensor.samples``: drawn from the
  release's training statistics, no copied rows) in 8 plain CSV files of 590 sensors;
- wafer map: ``--maps`` real WM-811K maps (``wafer_maps_orig.npz``, the val split, at their
  own sizes, read from ``$FABLENS_DATA_DIR``) written into 8 npz parts;
- time series: C-MAPSS ``train_FD001`` (100 engines, 20,631 cycles) cut into 4 "day" files
  in row order (most engines run across two files, so the shuffle by machine is measured);
- inspection: ``--photos`` MVTec AD bottle photos (train and test) in partitions of 32.

The month's projection takes the 1-worker rate as each worker's (one core each) and scales it
linearly with the workers (see ``projection``); the 2-worker ratio says how close two workers
came on this machine, and each run records the load average (other work on the machine).
"""
from __future__ import annotations

import argparse
import gzip
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import ROOT, add_markdown_option, emit, log_to_stderr, sensor_csv
from pipelines.core import locations

logger = logging.getLogger("benchmarks.score_bench")

MONTH = {"sensor": 10_000_000, "wafermap": 70_000}  # a fab's month: sensor rows, wafer maps
WORKERS = (1, 2, 4, 8, 16, 32)


def write_sensor(folder: Path, rows: int) -> int:
    per_file = rows // 8
    for k in range(8):
        (folder / f"wafers_{k:02d}.csv").write_bytes(sensor_csv(per_file, seed=100 + k))
    return per_file * 8


def write_wafermap(folder: Path, data: Path, n: int) -> int:
    from pipelines.wafermap.ingest import read_npz, write_npz

    maps = read_npz(data / "wm811k" / "wafer_maps_orig.npz", split="val")
    keep = np.arange(min(n, len(maps)))
    for k, part in enumerate(np.array_split(keep, 8)):
        write_npz(folder / f"lot_{k:02d}.npz", [maps.maps[i] for i in part], maps.labels[part],
                  layout="flat")
    return len(keep)


def write_timeseries(folder: Path, data: Path) -> int:
    lines = gzip.decompress((data / "cmapss" / "train_FD001.txt.gz").read_bytes()) \
        .decode().splitlines(keepends=True)
    cuts = np.linspace(0, len(lines), 5).astype(int)
    for k in range(4):
        (folder / f"day{k + 1}.txt").write_text("".join(lines[cuts[k]:cuts[k + 1]]))
    return len(lines)


def write_inspection(folder: Path, data: Path, n: int) -> int:
    photos = sorted((data / "mvtec" / "bottle").glob("t*/*/*.png"))[:n]
    for p in photos:
        target = folder / p.relative_to(data / "mvtec" / "bottle")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(p, target)
    return len(photos)


def measure(module: str, inputs: Path, workers: int, artifacts: Path, work: Path,
            **kwargs) -> dict:
    """Score ``inputs`` on a LocalCluster of ``workers`` processes; items per second."""
    from distributed import Client, LocalCluster

    from pipelines.core.batch import score, warm

    release = str((artifacts / module).resolve())
    started = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.WARNING) as cluster, \
            Client(cluster) as client:
        client.run(warm, module, release, 1)  # every worker loads the release first
        ready = time.perf_counter() - started
        output = work / f"out-{module}-{workers}"
        t0 = time.perf_counter()
        summary = score(module, inputs, output, client=client, release=release, **kwargs)
        seconds = time.perf_counter() - t0
    shutil.rmtree(output, ignore_errors=True)
    return {"workers": workers, "load_average": [round(v, 2) for v in os.getloadavg()],
            "items": summary["items"], "flagged": summary["flagged"],
            "partitions": summary["partitions"], "seconds": round(seconds, 2),
            "items_per_second": round(summary["items"] / seconds, 1),
            "cluster_and_load_seconds": round(ready, 1)}


def projection(rate_1: float, ratio: float, items: int) -> dict:
    """Minutes for ``items`` on N workers, each on its own core at the measured 1-worker rate
    (scoring is embarrassingly parallel: no data moves between partitions but the time
    series' shuffle), so N x the rate; ``efficiency_measured`` (the 2-worker ratio / 2) says
    how far two workers on this machine came from that."""
    out = {str(n): round(items / (rate_1 * n) / 60, 1) for n in WORKERS}
    return {"items": items, "rate_per_worker": rate_1, "efficiency_assumed": 1.0,
            "efficiency_measured": round(ratio / 2, 3), "minutes_by_workers": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensor-rows", type=int, default=40_000)
    parser.add_argument("--maps", type=int, default=8_000)
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--modules", default="sensor,wafermap,timeseries,inspection")
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    data = locations.data_dir(os.environ)
    artifacts = locations.artifacts_dir(os.environ) or ROOT / "artifacts"
    results = {"cpus": os.cpu_count(), "modules": {}}
    with tempfile.TemporaryDirectory(prefix="fablens-score-bench-") as tmp:
        work = Path(tmp)
        for module in args.modules.split(","):
            inputs = work / f"in-{module}"
            inputs.mkdir()
            kwargs = {}
            if module == "sensor":
                n = write_sensor(inputs, args.sensor_rows)
            elif module == "wafermap":
                n = write_wafermap(inputs, data, args.maps)
            elif module == "timeseries":
                n = write_timeseries(inputs, data)
                kwargs["partitions"] = 8
            else:
                n = write_inspection(inputs, data, args.photos)
                kwargs["partition_size"] = 32
            runs = []
            for workers in (1, 2):
                logger.info("%s: %d items on %d worker(s)", module, n, workers)
                runs.append(measure(module, inputs, workers, artifacts, work, **kwargs))
            ratio = runs[1]["items_per_second"] / runs[0]["items_per_second"]
            entry = {"items": n, "runs": runs, "scaling_2_over_1": round(ratio, 2)}
            if module in MONTH:
                entry["month"] = projection(runs[0]["items_per_second"], ratio, MONTH[module])
            results["modules"][module] = entry
    emit("score_bench", results, markdown(results), args.markdown)
    return 0


NOUNS = {"sensor": "rows", "wafermap": "maps", "timeseries": "cycles", "inspection": "photos"}


def markdown(results: dict) -> list[str]:
    lines = ["| module | items | 1 worker: items/s | 2 workers: items/s | 2 / 1 | partitions |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for module, entry in results["modules"].items():
        one, two = entry["runs"]
        lines.append(f"| {module} | {entry['items']:,} {NOUNS[module]} | "
                     f"{one['items_per_second']:,.0f} | {two['items_per_second']:,.0f} | "
                     f"{entry['scaling_2_over_1']:.2f} | {one['partitions']} |")
    lines += ["", "A month of a fab's data, projected (minutes of wall time, each worker on "
              "its own core at the 1-worker rate):", "",
              "| workers | " + " | ".join(f"{m} ({results['modules'][m]['month']['items']:,} "
                                           f"{NOUNS[m]})" for m in MONTH
                                           if m in results["modules"]) + " |",
              "| ---: |" + " ---: |" * sum(m in results["modules"] for m in MONTH)]
    for n in WORKERS:
        cells = [f"{results['modules'][m]['month']['minutes_by_workers'][str(n)]:,.1f}"
                 for m in MONTH if m in results["modules"]]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())

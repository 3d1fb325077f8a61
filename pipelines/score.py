"""Score a month of data on Dask: ``python -m pipelines.score <module> --input ... --output ...``.

Partition by partition on a LocalCluster (one worker process per core by default) or on any
Dask scheduler (``--scheduler tcp://host:8786``), with the predictor the web app serves; one
results file per partition and ``summary.json`` in ``--output`` (see
``pipelines.core.batch``). Prints the summary on stdout, progress on stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from pipelines.core.batch import FORMATS, batch_modules, score


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines.score",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("module", choices=batch_modules())
    parser.add_argument("--input", required=True,
                        help="a folder (searched recursively), a glob (quote it), or a file")
    parser.add_argument("--output", required=True, type=Path,
                        help="folder for part-NNNNN.<format> and summary.json")
    parser.add_argument("--scheduler", default=None,
                        help="a Dask scheduler's address (default: a LocalCluster here)")
    parser.add_argument("--workers", type=int, default=None,
                        help="LocalCluster worker processes (default: one per core)")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--model-threads", type=int, default=1,
                        help="threads each model uses on a worker (default 1)")
    parser.add_argument("--release", type=Path, default=None,
                        help="release folder (default: artifacts/<module>)")
    parser.add_argument("--model", default=None, help="a model of the release (default: its own)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="flag at this score (wafer maps: the review level)")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--partition-size", type=int, default=None,
                        help="sensor: bytes per CSV block; wafer maps, inspection: images per "
                             "partition")
    parser.add_argument("--partitions", type=int, default=None,
                        help="time series: partitions the machines are hashed into")
    parser.add_argument("--machine-column", default=None, help="time series CSV")
    parser.add_argument("--time-column", default=None, help="time series CSV")
    parser.add_argument("--sensors", default=None, help="time series CSV, comma-separated")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier run's results in --output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    options = {}
    if args.module == "timeseries":
        options = {"machine_column": args.machine_column, "time_column": args.time_column,
                   "sensors": [s.strip() for s in args.sensors.split(",") if s.strip()]
                   if args.sensors else None}

    def progress(done: int, total: int) -> None:
        print(f"[{args.module} {time.perf_counter() - started:6.1f}s] {done}/{total} partitions",
              file=sys.stderr, flush=True)

    summary = score(args.module, args.input, args.output, scheduler=args.scheduler,
                    workers=args.workers, threads_per_worker=args.threads_per_worker,
                    model_threads=args.model_threads, release=args.release, model=args.model,
                    threshold=args.threshold, fmt=args.format,
                    partition_size=args.partition_size, partitions=args.partitions,
                    overwrite=args.overwrite, options=options, progress=progress)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

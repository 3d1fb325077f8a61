"""The whole server's memory while a large sensor file (or npz of wafer maps) scores as a job.

Starts render.yaml's start command (one worker, four threads: the embedded job worker runs
inside it) on a fresh SQLite file, waits until every module's models are loaded, writes a
``--rows``-row sensor CSV into the server's input folder (``FABLENS_JOBS_INPUT_DIR``; the first
``--filled`` sensors filled, the rest empty, written as it is generated), starts a scoring job
on it (``POST /api/v1/jobs``), and samples every server process's PSS every 0.1 s until the job
is done. Reports the peak summed PSS against the 512 MiB budget, the time, the rows per second
and the results file's size. ``--module wafermap`` writes an npz of ``--maps`` real WM-811K
maps instead (the data set's maps at their own sizes, repeated; flat layout, compressed) and
scores that (``benchmarks/out/job_memory_wafermap.json``).

    .venv/bin/python -m benchmarks.job_memory --rows 1000000
    .venv/bin/python -m benchmarks.job_memory --module wafermap --maps 100000
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from benchmarks.common import add_markdown_option, emit, log_to_stderr, sample_model
from benchmarks.server_memory import BUDGET_MIB, PeakSampler, RenderServer, snapshot


def write_sensor_csv(path: Path, rows: int, filled: int, model: dict) -> int:
    """A ``rows``-row sensor CSV at ``path``, written in blocks (never whole in memory)."""
    from pipelines.sensor.samples import sensor_sample
    from pipelines.sensor.schema import SENSOR_COLUMNS

    block = sensor_sample(model, n_rows=1000, seed=2)[SENSOR_COLUMNS].round(2)
    cells = block.astype("string").fillna("").to_numpy()[:, :filled]
    tail = "," * (len(SENSOR_COLUMNS) - filled)
    lines = [",".join(row) + tail for row in cells]
    with open(path, "w") as out:
        out.write(",".join(["Wafer", *SENSOR_COLUMNS]) + "\n")
        for start in range(0, rows, 10_000):
            out.write("".join(f"W{i + 1},{lines[i % len(lines)]}\n"
                              for i in range(start, min(start + 10_000, rows))))
    return path.stat().st_size


def write_maps_npz(path: Path, n: int) -> tuple[int, int]:
    """An npz of ``n`` real WM-811K maps (the data set's, at their own sizes, repeated in file
    order) with their labels; (its size in bytes, the dies it holds)."""
    from pipelines.core import locations
    from pipelines.wafermap.ingest import find_data, read_npz, write_npz

    found = read_npz(find_data(locations.data_dir(os.environ) / "wm811k"))
    maps = [found.maps[i % len(found)] for i in range(n)]
    write_npz(path, maps, [str(found.labels[i % len(found)]) for i in range(n)], layout="flat")
    return path.stat().st_size, sum(int(m.size) for m in maps)


class JobServer(RenderServer):
    """render.yaml's server with an input folder for jobs."""

    def __init__(self, input_dir: Path):
        super().__init__()
        self.input_dir = input_dir

    def _environment(self) -> dict:
        return {**super()._environment(), "FABLENS_JOBS_INPUT_DIR": str(self.input_dir)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the file (1000000)")
    parser.add_argument("--filled", type=int, default=7, help="sensors filled per row (7)")
    parser.add_argument("--module", choices=("sensor", "wafermap"), default="sensor",
                        help="score a sensor CSV (default) or an npz of wafer maps")
    parser.add_argument("--maps", type=int, default=100_000, help="maps in the npz (100000)")
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="fablens-job-input-"))
    if args.module == "wafermap":
        return maps_job(folder, args)
    size = write_sensor_csv(folder / "big.csv", args.rows, args.filled, sample_model())
    run = scoring_job(folder, "sensor", "big.csv")
    result = {"rows": args.rows, "filled_sensors": args.filled, "csv_mb": round(size / 1e6, 1),
              **run, "rows_per_second": round(args.rows / run["seconds"])}
    emit("job_memory", result, table(
        "rows/s", f"{args.rows:,} rows, {size / 1e6:.0f} MB ({args.filled} sensors filled)",
        args.rows, run), args.markdown)
    return 0


def maps_job(folder: Path, args) -> int:
    """The wafer-map variant: an npz of ``args.maps`` maps scored as a job."""
    size, dies = write_maps_npz(folder / "maps.npz", args.maps)
    run = scoring_job(folder, "wafermap", "maps.npz")
    result = {"maps": args.maps, "dies": dies, "npz_mb": round(size / 1e6, 1), **run,
              "maps_per_second": round(args.maps / run["seconds"])}
    emit("job_memory_wafermap", result, table(
        "maps/s", f"{args.maps:,} WM-811K maps, npz of {size / 1e6:.0f} MB "
        f"({dies / 1e6:.0f} M dies)", args.maps, run), args.markdown)
    return 0


def scoring_job(folder: Path, module: str, name: str) -> dict:
    """Score ``folder/name`` as a ``module`` job on the server as render.yaml starts it, with
    the input folder set to ``folder``: state, time and the server's memory around it."""
    with JobServer(folder) as server:
        loaded = snapshot(server.master)
        with PeakSampler(server.master) as sampler:
            start = time.perf_counter()
            job = server.post_json("/api/v1/jobs", {"kind": "score", "module": module,
                                                    "input": name})
            while job["state"] in ("queued", "running"):
                time.sleep(1.0)
                job = server.get_json(f"/api/v1/jobs/{job['id']}?log=5")
            seconds = time.perf_counter() - start
        after = snapshot(server.master)
        results = server.tmp and sorted(Path(server.tmp).glob("jobs/results/*.csv.gz"))
    peak = sampler.peak["total_pss_mib"]
    return {"state": job["state"], "error": job["error"], "seconds": round(seconds, 1),
            "models_loaded": loaded, "peak_total_pss_mib": peak, "after": after,
            "results_gz_mb": round(results[0].stat().st_size / 1e6, 1) if results else None,
            "budget_mib": BUDGET_MIB, "within_budget": peak <= BUDGET_MIB}


def table(rate: str, file: str, items: int, run: dict) -> list[str]:
    """The BENCHMARKS.md table of one job run (``rate``: the items-per-second heading)."""
    peak = run["peak_total_pss_mib"]
    return [f"| file | job | time | {rate} | server PSS: models loaded / peak while scoring / "
            "after |", "| --- | --- | --- | --- | --- |",
            f"| {file} | {run['state']} | {run['seconds']:.0f} s | "
            f"{items / run['seconds']:,.0f} | {run['models_loaded']['total_pss_mib']:.0f} / "
            f"{peak:.0f} / {run['after']['total_pss_mib']:.0f} MiB |",
            "", f"Peak {peak:.0f} MiB PSS: {'within' if peak <= BUDGET_MIB else 'OVER'} the "
                f"{BUDGET_MIB} MiB budget."]


if __name__ == "__main__":
    raise SystemExit(main())

"""Soak: thousands of predictions one after another, and what the server's memory does.

Run: ``python -m benchmarks.soak [--requests 10000] [--every 500] [--markdown PATH]`` (JSON on
stdout and in ``benchmarks/out/soak.json``).

Starts render.yaml's start command (``benchmarks.server_memory.RenderServer``), loads every
module, sends ``--warmup`` requests, then ``--requests`` more on one connection, cycling
through the light kinds of ``benchmarks.load_test`` (one sensor row, one detect window, one
photo, ten wafer maps), each answer checked (200). Every ``--every`` requests it reads the
server's summed PSS (master + workers) and how many workers have started (render.yaml's
``--max-requests 2000`` recycles the worker now and then, which gives its memory back by
design: the report says when it happened). The issue-21 target: memory growth under 10%
from after the warm-up to the end.
"""
from __future__ import annotations

import argparse
import http.client
import itertools
import time
from pathlib import Path

from benchmarks.common import add_markdown_option, emit, log_to_stderr
from benchmarks.load_test import KINDS, requests, send
from benchmarks.server_memory import RenderServer, children, snapshot, start_command


def main(argv: list[str] | None = None) -> int:
    from pipelines.core import locations

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--every", type=int, default=500, help="requests between readings")
    parser.add_argument("--data", type=Path, default=locations.data_dir(__import__("os").environ))
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()

    light = [k for k in KINDS if KINDS[k][1]]
    readings, failures = [], 0
    with RenderServer() as server:
        kinds = requests(server.auth, args.data)
        cycle = itertools.cycle([kinds[k] for k in light])
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

        def one() -> None:
            nonlocal conn, failures
            try:
                outcome = send(conn, next(cycle))
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            failures += outcome is not None

        for _ in range(args.warmup):
            one()
        began = time.perf_counter()
        for done in range(args.requests + 1):
            if done % args.every == 0:
                snap = snapshot(server.master)
                readings.append({"requests": done, "seconds": round(time.perf_counter() - began,
                                                                     1),
                                 "total_pss_mib": snap["total_pss_mib"],
                                 "worker_pids": children(server.master)})
            if done < args.requests:
                one()
        conn.close()
        log = server.log_path.read_text()
    recycled = log.count("Autorestarting worker") + log.count("max requests")
    first, last = readings[0]["total_pss_mib"], readings[-1]["total_pss_mib"]
    peak = max(r["total_pss_mib"] for r in readings)
    result = {"command": start_command(), "requests": args.requests, "warmup": args.warmup,
              "kinds": light, "failures": failures, "readings": readings,
              "start_pss_mib": first, "end_pss_mib": last, "peak_pss_mib": peak,
              "growth_pct": round(100 * (last - first) / first, 1),
              "peak_growth_pct": round(100 * (peak - first) / first, 1),
              "worker_restarts_logged": recycled,
              "seconds": readings[-1]["seconds"]}
    lines = [f"Command: `{result['command']}`; {args.warmup} warm-up requests, then "
             f"{args.requests:,} one after another cycling {', '.join(light)}; "
             f"{failures} failed.", "",
             "| after requests | seconds | summed PSS | worker pid |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['requests']:,} | {r['seconds']} | {r['total_pss_mib']:.0f} MiB | "
              f"{', '.join(map(str, r['worker_pids']))} |" for r in readings]
    lines += ["", f"Growth from after the warm-up to the end: {result['growth_pct']}% "
                  f"({first:.0f} -> {last:.0f} MiB; highest reading {peak:.0f} MiB, "
                  f"+{result['peak_growth_pct']}%); worker restarts logged: {recycled}."]
    emit("soak", result, lines, args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

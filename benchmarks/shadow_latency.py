"""Shadow scoring's cost to the live answer, and the server's memory with a candidate loaded.

Run: ``python -m benchmarks.shadow_latency [--requests 60] [--markdown PATH]`` (JSON on
stdout and in ``benchmarks/out/shadow_latency.json``).

Starts render.yaml's start command (``benchmarks.server_memory.RenderServer``: one worker,
four threads, accounts on), loads every module, then for each ready module sends its contract
example request (``ModuleSpec.examples``: a small batch with formula-like names)
``--requests`` times, back to back and then one every ``--pace`` seconds, and times each
answer, first with no candidate attached, then with a candidate attached (the live version
with its default model's threshold moved by 0.1%: the same models, so the same load and
memory as a retrained candidate). The shadow thread works only when the worker has been idle
for ``SHADOW_QUIET_SECONDS``, so back to back it scores a sample (the rest skipped), and at a
pace it scores between requests; any slowing of the live answer shows in its latency.
Reports per module and phase the median and 95th percentile with and without a candidate,
the runs the candidate scored and skipped, its median lag, and the server's summed PSS
(master + workers) with the candidate loaded and at its peak, against the 512 MiB budget.
"""
from __future__ import annotations

import argparse
import http.client
import statistics
import time

from benchmarks.common import add_markdown_option, emit, log_to_stderr
from benchmarks.server_memory import (BUDGET_MIB, PeakSampler, RenderServer, multipart,
                                      snapshot, start_command)


def example(module: str) -> tuple[str, bytes, str]:
    """The module's contract example as a multipart request: path, body, content type."""
    from flask import url_for

    from webapp import create_app
    from webapp.predictors import get_predictor
    from webapp.registry import get_module

    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite:///:memory:"})
    with app.test_request_context():
        spec = get_module(module)
        good = spec.examples(get_predictor(module)).good
        path = url_for(spec.predict)
    body, content_type = multipart(good.data, good.filename)
    return path, body, content_type


def timed(server: RenderServer, path: str, body: bytes, content_type: str, n: int,
          pace: float = 0.0) -> list[float]:
    """``n`` answers on one keep-alive connection, in milliseconds: back to back, or one
    request every ``pace`` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    out = []
    try:
        for i in range(n):
            if pace and i:
                time.sleep(max(0.0, pace - out[-1] / 1000))
            start = time.perf_counter()
            conn.request("POST", path, body=body,
                         headers={"Content-Type": content_type, **server.auth})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
            out.append((time.perf_counter() - start) * 1000)
    finally:
        conn.close()
    return out


def summary(ms: list[float]) -> dict:
    ordered = sorted(ms)
    return {"n": len(ms), "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(0, int(round(0.95 * len(ordered))) - 1)], 1)}


def counts(server: RenderServer, module: str) -> tuple[int, int]:
    """The attached candidate's runs scored and skipped so far."""
    comparison = server.get_json(f"/api/v1/registry/{module}")["comparison"] or {}
    return int(comparison.get("runs") or 0), int(comparison.get("skipped") or 0)


def measure(server: RenderServer, module: str, n: int, pace: float) -> dict:
    path, body, content_type = example(module)
    timed(server, path, body, content_type, 3)  # warm the path
    phases = {"back_to_back": 0.0, "paced": pace}
    without = {name: timed(server, path, body, content_type, n, p) for name, p in phases.items()}
    candidate = server.attach_shadow(module)
    # the worker sees the candidate within LIVE_CHECK_SECONDS, and its shadow thread loads
    # it on the first request it copies: send requests until the candidate has scored one
    deadline = time.time() + 300
    while server.shadow_runs(module) < 1:
        if time.time() > deadline:
            raise RuntimeError(f"{module}: the candidate scored nothing in 300 s")
        timed(server, path, body, content_type, 1)
        time.sleep(0.5)
    out = {"path": path, "candidate": candidate, "phases": {}}
    with PeakSampler(server.master) as sampler:
        for name, p in phases.items():
            time.sleep(2.0)  # what the last phase queued is scored before this one starts
            before = counts(server, module)
            with_shadow = timed(server, path, body, content_type, n, p)
            time.sleep(2.0)
            after = counts(server, module)
            out["phases"][name] = {
                "pace_s": p, "without_shadow": summary(without[name]),
                "with_shadow": summary(with_shadow), "shadow_scored": after[0] - before[0],
                "shadow_skipped": after[1] - before[1]}
    loaded = snapshot(server.master)
    comparison = server.get_json(f"/api/v1/registry/{module}")["comparison"]
    server.post_json(f"/api/v1/registry/{module}/shadow/detach", {"reason": "benchmark done"})
    return out | {"shadow_failed": comparison["failed"],
                  "shadow_lag_median_s": comparison["lag_median_seconds"],
                  "pss_with_candidate_mib": loaded["total_pss_mib"],
                  "peak_pss_mib": sampler.peak["total_pss_mib"]}


def markdown(result: dict) -> list[str]:
    lines = [f"Command: `{result['command']}` ({result['workers']} worker), "
             f"{result['requests']} requests per phase on one connection: back to back, then "
             f"one every {result['pace']:g} s", "",
             "| module (example request) | requests | live answer, no candidate: median / p95 "
             "| with a shadow candidate: median / p95 | candidate scored (skipped) |",
             "| --- | --- | --- | --- | --- |"]
    for module, r in result["modules"].items():
        for name, phase in r["phases"].items():
            a, b = phase["without_shadow"], phase["with_shadow"]
            how = "back to back" if not phase["pace_s"] else f"one every {phase['pace_s']:g} s"
            lines.append(f"| {module} | {how} | {a['median_ms']:.1f} / {a['p95_ms']:.1f} ms | "
                         f"{b['median_ms']:.1f} / {b['p95_ms']:.1f} ms | "
                         f"{phase['shadow_scored']} ({phase['shadow_skipped']}) |")
    lines += ["", "| module | shadow lag, median | summed PSS with the candidate loaded (peak) |",
              "| --- | --- | --- |"]
    for module, r in result["modules"].items():
        lag = r["shadow_lag_median_s"]
        lines.append(f"| {module} | {'-' if lag is None else f'{lag:.2f} s'} | "
                     f"{r['pss_with_candidate_mib']:.0f} MiB ({r['peak_pss_mib']:.0f}) |")
    verdict = "within" if result["within_budget"] else "over"
    lines += ["", f"Highest summed PSS with a candidate loaded: {result['highest_pss_mib']:.0f} "
                  f"MiB, {verdict} the {BUDGET_MIB} MiB budget."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60, help="requests per phase (60)")
    parser.add_argument("--pace", type=float, default=0.25,
                        help="seconds between requests in the paced phase (0.25)")
    parser.add_argument("--modules", nargs="*", help="modules to measure (default: every one)")
    add_markdown_option(parser)
    args = parser.parse_args(argv)
    log_to_stderr()
    from webapp.modules import ready_modules

    names = args.modules or [spec.name for spec in ready_modules()]
    with RenderServer() as server:
        modules = {name: measure(server, name, args.requests, args.pace) for name in names}
        result = {"command": start_command(), "workers": server.workers(),
                  "requests": args.requests, "pace": args.pace, "modules": modules}
    highest = max(max(r["pss_with_candidate_mib"], r["peak_pss_mib"]) for r in modules.values())
    result |= {"highest_pss_mib": highest, "budget_mib": BUDGET_MIB,
               "within_budget": highest <= BUDGET_MIB}
    emit("shadow_latency", result, markdown(result), args.markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

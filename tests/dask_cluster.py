"""A real Dask cluster on loopback for the tests: ``dask scheduler`` and ``dask worker
--nworkers 2`` processes (the distributed package's command line), as a module-scoped fixture.

A test module uses it with ``from tests.dask_cluster import scheduler`` (the fixture) and asks
for ``scheduler``, the scheduler's address. The workers import this repository (PYTHONPATH)
and run on this machine, so they see the same release folders, inputs and output folders.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a ``dask scheduler`` on 127.0.0.1 with two worker processes."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    address_file = folder / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), DASK_DISTRIBUTED__WORKER__DAEMON="False")
    common = dict(cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                  start_new_session=True)
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(address_file)],
                              **common)]
    try:
        deadline = time.monotonic() + 60
        while not address_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(subprocess.Popen(
            [str(DASK), "worker", address, "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard", "--host", "127.0.0.1", "--local-directory", str(folder),
             "--memory-limit", "4GiB"], **common))
        with Client(address) as client:
            client.wait_for_workers(2, timeout=90)
        yield address
    finally:
        for proc in reversed(procs):
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

"""Write a pseudo test set in the official layout from the release's validation engines.

``python -m pipelines.timeseries.pseudo_test --out /tmp/pseudo`` reads train_FD001, keeps the
validation engines named in ``artifacts/timeseries/evaluation.json`` (never seen in training),
cuts each at a random cycle (``evaluate.pseudo_test``) and writes ``test_FD001.txt`` and
``RUL_FD001.txt`` there, for ``python -m pipelines.evaluate timeseries --test ... --rul ...``.
``--cuts N`` pools N cuts (seeds ``seed..seed + N - 1``, ``evaluate.pooled_cuts``) into one
file of N x 20 engines: one cut of 20 engines holds few anomalous windows and its F1 swings by
several points. Data stays outside the repository.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from pipelines.core import locations
from pipelines.timeseries.evaluate import pooled_cuts
from pipelines.timeseries.ingest import find_data, read_cmapss, write_cmapss


def write_pseudo_test(train_file: Path, val_machines: list[str], out: Path, seed: int = 0,
                      cuts: int = 1) -> tuple[Path, Path]:
    """Cut ``val_machines`` of ``train_file`` (``cuts`` times, seeds from ``seed``, pooled)
    and write the test and RUL files into ``out``."""
    series = read_cmapss(train_file)
    cut, last_rul = pooled_cuts(series, val_machines, list(range(seed, seed + cuts)))
    out.mkdir(parents=True, exist_ok=True)
    # engines renumbered 1..n in order, as in the official files
    order = {m: k + 1 for k, m in enumerate(cut.machine_ids())}
    units = np.array([order[m] for m in cut.machines])
    test, rul = out / "test_FD001.txt", out / "RUL_FD001.txt"
    write_cmapss(test, units, cut.cycles, cut.settings, cut.values)
    rul.write_text("".join(f"{int(v)}\n" for v in last_rul))
    return test, rul


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the files to")
    parser.add_argument("--data", type=Path, default=locations.data_dir(os.environ))
    parser.add_argument("--artifacts", type=Path, default=locations.artifacts_dir(os.environ))
    parser.add_argument("--seed", type=int, default=1, help="cut seed (default 1; training "
                                                            "used 0 for its own check)")
    parser.add_argument("--cuts", type=int, default=1,
                        help="pool this many cuts (seeds --seed, --seed + 1, ...; default 1)")
    args = parser.parse_args(argv)
    evaluation = json.loads((args.artifacts / "timeseries" / "evaluation.json").read_text())
    test, rul = write_pseudo_test(find_data(args.data), evaluation["val_machines"], args.out,
                                  args.seed, args.cuts)
    print(f"wrote {test} and {rul}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

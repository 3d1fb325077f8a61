"""A stand-in for ``python -m pipelines.train`` in the job tests: the same arguments, progress
lines like the real command's, a pause per epoch, then the committed release copied to
``OUT/<module>`` (a release that loads). ``--fail`` exits 3 with a message instead."""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

parser = argparse.ArgumentParser()
parser.add_argument("module")
parser.add_argument("--data", required=True)
parser.add_argument("--artifacts", type=Path, required=True)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--pause", type=float, default=0.05)
parser.add_argument("--fail", action="store_true")
args = parser.parse_args()
for epoch in range(args.epochs):
    time.sleep(args.pause)
    print(f"[{args.module}   {epoch * args.pause:.1f}s] epoch {epoch + 1}/{args.epochs}: loss "
          f"{1 / (epoch + 1):.4f}", file=sys.stderr, flush=True)
if args.fail:
    print("ValueError: the data has no labels", file=sys.stderr, flush=True)
    raise SystemExit(3)
shutil.copytree(ROOT / "artifacts" / args.module, args.artifacts / args.module)

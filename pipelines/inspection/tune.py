"""Compare detector settings on held-out good training images and synthetic defects.

``python -m pipelines.inspection.tune [--data DIR] [--model radial] '{"smooth": 1}' ...``
fits the model once per JSON setting on the fit part of train/good (the same split as
training), and prints one JSON line per setting: image and pixel AUROC on the validation
images plus synthetic defects, as they are and rotated. No test image is read: this is how the
shipped settings were chosen. ``--bundle DIR`` (repeatable) scores a model bundle already
fitted (an earlier release's ``radial/``, say) on the same photos instead of fitting one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from pipelines.core import locations
from pipelines.core.artifacts import load_bundle
from pipelines.inspection.train import (MODELS, SPLIT_SEED, VAL_FRACTION, read_good_images,
                                        synthetic_figures, synthetic_set)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", type=json.loads, default=[{}],
                        help="JSON parameter settings to compare (default: the defaults)")
    parser.add_argument("--data", default=str(locations.data_dir(os.environ)))
    parser.add_argument("--model", default="radial", choices=sorted(MODELS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", action="append", default=[],
                        help="a fitted model bundle to score instead of fitting (repeatable)")
    args = parser.parse_args(argv)
    good = read_good_images(Path(args.data), VAL_FRACTION, SPLIT_SEED, lambda s: None)
    synthetic = synthetic_set(good.val)
    for folder in args.bundle:
        detector, manifest = load_bundle(Path(folder), n_jobs=args.threads)
        report({"bundle": folder, "version": manifest.get("version")},
               synthetic_figures(detector, synthetic, None))
    for setting in [] if args.bundle else args.settings or [{}]:
        started = time.perf_counter()
        detector = MODELS[args.model](**{"n_jobs": args.threads, **setting})
        detector.fit(good.fit.astype(np.float32))
        seconds = time.perf_counter() - started
        report({"model": args.model, "setting": setting, "fit_seconds": round(seconds, 1)},
               synthetic_figures(detector, synthetic, None))
    return 0


def report(head: dict, result: dict) -> None:
    """One JSON line: ``head`` and the rounded figures."""
    print(json.dumps(head | {k: (round(v, 4) if isinstance(v, float) else
                                 {a: round(b, 4) for a, b in v.items()})
                             for k, v in result.items()}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

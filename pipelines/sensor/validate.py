"""Validate incoming wafer batch files: ``python -m pipelines.validate DIR [--prediction]``.

(``python -m pipelines.sensor.validate`` is the same command.)

Prints one JSON report per file (accepted, or rejected with every reason) and a summary;
exits 0 when it could read the folder, whatever the verdicts.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from pipelines.sensor.ingest.batches import batch_files, validate_batch_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.validate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of wafer_<DDMMYYYY>_<HHMMSS>.csv files")
    parser.add_argument("--prediction", action="store_true",
                        help="files without the Good/Bad label column (default: training files)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    reports, _ = validate_batch_files(batch_files(args.folder), with_labels=not args.prediction)
    accepted = [r for r in reports if r.accepted]
    print(json.dumps({"folder": str(args.folder), "files": len(reports),
                      "accepted": len(accepted), "rejected": len(reports) - len(accepted),
                      "rows_accepted": sum(r.rows for r in accepted),
                      "reports": [r.to_dict() for r in reports]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

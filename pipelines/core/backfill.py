"""Adding a derived file to a release that already exists, without retraining.

Training writes every module-level file of a release (drift references, the training rows'
fingerprint). A release made before such a file existed gets it from a small command per
file, ``python -m pipelines.<module>.<file> [--data DIR] [--artifacts DIR]``, which all have
one shape, :func:`backfill_main`: read the release's manifest, let the module's ``add`` check
that the data given is the data the release was trained on and write its file, then list the
file in the manifest. Data that is not the training data writes nothing and exits 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipelines.core.artifacts import add_release_files, read_manifest, sha256


class NotTrainingData(ValueError):
    """The data given is not what the release was trained on."""


def check_training_file(file: Path, manifest: dict) -> None:
    """Raise :class:`NotTrainingData` unless ``file`` is the release's training file (by the
    sha256 its manifest records)."""
    if sha256(Path(file)) != manifest["training_data"]["sha256"]:
        raise NotTrainingData(f"{file} is not the file the release was trained on "
                              "(sha256 differs)")


# add(data, release folder, release manifest) -> ({file name: role}, what to print)
Adder = Callable[[Path, Path, dict], tuple[dict[str, str], str]]


def backfill_main(argv: list[str] | None, *, description: str, module: str, data_help: str,
                  add: Adder) -> int:
    """The command line of a backfill: ``add`` writes the file into ``<artifacts>/<module>``,
    which is then listed in its manifest. 0 when written, 2 when the data is not the training
    data (said on stderr)."""
    from pipelines.core.locations import artifacts_dir, data_dir

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=data_dir(os.environ), help=data_help)
    parser.add_argument("--artifacts", type=Path, default=artifacts_dir(os.environ))
    args = parser.parse_args(argv)
    release = Path(args.artifacts) / module
    try:
        files, message = add(Path(args.data), release, read_manifest(release))
    except NotTrainingData as exc:
        print(exc, file=sys.stderr)
        return 2
    add_release_files(release, files)
    print(message)
    return 0

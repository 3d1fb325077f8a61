"""A tiny wafer-map release trained in seconds on synthetic maps, shared by the fast tests."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.wafermap.examples import PATTERNS, synthetic_map
from pipelines.wafermap.ingest import write_npz
from pipelines.wafermap.train import train_wafermap

FAST = {"channels": [4, 8, 8, 8], "epochs": 2, "epoch_size": 64, "batch_size": 32,
        "tta": 1, "occlusion_stride": 8, "trees": 10, "n_jobs": 1}
SIZES = (26, 40, 64, 90)


def synthetic_maps(n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` maps of mixed sizes (grown and shrunk to the model grid) cycling the patterns."""
    rng = np.random.default_rng(seed)
    labels = [PATTERNS[i % len(PATTERNS)] for i in range(n)]
    return [synthetic_map(p, SIZES[i % len(SIZES)], rng) for i, p in enumerate(labels)], labels


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """The same labelled maps as npz files in both layouts (X at 64 x 64, and flat)."""
    folder = tmp_path_factory.mktemp("wafermap-data")
    maps, labels = synthetic_maps(96, seed=0)
    split = ["train" if i % 3 else "val" for i in range(len(maps))]
    write_npz(folder / "flat.npz", maps, labels, layout="flat", split=split)
    from pipelines.wafermap.transform import resize_map

    write_npz(folder / "x64.npz", [resize_map(m) for m in maps], labels, layout="X", split=split)
    return {"folder": folder, "maps": maps, "labels": labels, "split": split}


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, tiny_data):
    """(artifacts folder, evaluation) of a release trained on ``tiny_data``'s flat npz."""
    artifacts = tmp_path_factory.mktemp("wafermap-artifacts")
    evaluation = train_wafermap(tiny_data["folder"] / "flat.npz", artifacts, params=FAST)
    return artifacts, evaluation

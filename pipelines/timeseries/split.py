"""The engine split of the time-series protocol: whole engines (units), never rows."""
from __future__ import annotations

import numpy as np


def split_machines(machines: list[str], val_fraction: float = 0.2, seed: int = 0
                   ) -> tuple[list[str], list[str]]:
    """Training and validation machines (whole engines), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    order = [machines[k] for k in rng.permutation(len(machines))]
    n_val = max(1, int(round(val_fraction * len(machines))))
    return sorted(order[n_val:], key=_natural), sorted(order[:n_val], key=_natural)


def _natural(text: str):
    return (0, int(text)) if text.isdigit() else (1, text)

"""Flagged cycles grouped into episodes: one per machine per unbroken stretch of flags.

A run-to-failure engine is flagged for its last 20 to 40 cycles in a row; that is one warning,
not 30. :func:`flag_episodes` turns per-row flags into those stretches, so the event store,
the page and any report count warnings the same way.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd


class Episode(NamedTuple):
    """One unbroken stretch of flagged rows of one machine (row indices into the input)."""

    machine: str
    rows: np.ndarray

    def peak(self, scores: np.ndarray) -> int:
        """The row of the highest score (the first of equal ones)."""
        return int(self.rows[np.argmax(scores[self.rows])])


def flag_episodes(machines: Sequence, flagged: Sequence[bool],
                  follows: Sequence[bool] | None = None) -> list[Episode]:
    """The maximal stretches of flagged rows per machine, machines in order of first
    appearance, each machine's stretches in row order.

    Rows are taken in input order within each machine (a history file: its cycles, which
    increase). A flagged row continues the stretch of its machine's previous row when that row
    was flagged too and ``follows[row]`` is true; ``follows`` defaults to every row directly
    following its machine's previous one, as in a file. Give it where rows may have gaps
    between them (windows sent one by one: only a window whose previous cycle is the other
    window's cycle follows it).
    """
    flagged = np.asarray(flagged, dtype=bool)
    n = len(flagged)
    if len(machines) != n or (follows is not None and len(follows) != n):
        raise ValueError("machines, flagged and follows need one value per row")
    if not flagged.any():
        return []
    codes, names = pd.factorize(pd.Series(list(machines), dtype=object), sort=False)
    order = np.argsort(codes, kind="stable")  # each machine's rows together, in input order
    code, flag = codes[order], flagged[order]
    linked = np.ones(n, dtype=bool) if follows is None else np.asarray(follows, dtype=bool)
    linked = linked[order]
    cont = np.zeros(n, dtype=bool)
    cont[1:] = (code[1:] == code[:-1]) & flag[:-1] & flag[1:] & linked[1:]
    starts = flag & ~cont
    episode = np.cumsum(starts) - 1
    rows, ids = order[flag], episode[flag]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    return [Episode(str(names[codes[part[0]]]), part) for part in np.split(rows, cuts)]

"""Flagged rows become episodes: one per machine per unbroken stretch of flags."""
from __future__ import annotations

import numpy as np
import pytest

from pipelines.timeseries.episodes import flag_episodes


def spans(episodes):
    return [(e.machine, e.rows.tolist()) for e in episodes]


def test_one_episode_per_unbroken_stretch_per_machine():
    machines = ["A"] * 6 + ["B"] * 4
    flagged = [0, 1, 1, 0, 1, 1, 1, 1, 0, 1]
    assert spans(flag_episodes(machines, flagged)) == [
        ("A", [1, 2]), ("A", [4, 5]), ("B", [6, 7]), ("B", [9])]


def test_a_stretch_never_runs_from_one_machine_into_the_next():
    assert spans(flag_episodes(["A", "A", "B", "B"], [1, 1, 1, 1])) == [
        ("A", [0, 1]), ("B", [2, 3])]


def test_interleaved_rows_are_grouped_by_machine_in_input_order():
    machines = ["A", "B", "A", "B", "A"]
    flagged = [1, 1, 1, 0, 1]
    assert spans(flag_episodes(machines, flagged)) == [("A", [0, 2, 4]), ("B", [1])]


def test_nothing_flagged_is_no_episode_and_everything_flagged_is_one():
    assert flag_episodes(["A"] * 3, [False] * 3) == []
    assert flag_episodes([], []) == []
    assert spans(flag_episodes(["7"] * 300, np.ones(300, bool))) == [("7", list(range(300)))]


def test_follows_breaks_a_stretch_where_rows_have_a_gap():
    # windows sent one by one: the third does not follow the second (a cycle is missing)
    episodes = flag_episodes(["A"] * 4, [1, 1, 1, 1], follows=[False, True, False, True])
    assert spans(episodes) == [("A", [0, 1]), ("A", [2, 3])]


def test_the_peak_is_the_row_of_the_highest_score():
    scores = np.array([0.1, 0.7, 0.9, 0.8, 0.2])
    (episode,) = flag_episodes(["A"] * 5, scores >= 0.5)
    assert episode.peak(scores) == 2


def test_numeric_machine_ids_come_back_as_text():
    assert [e.machine for e in flag_episodes(np.array([3, 3, 12]), [1, 0, 1])] == ["3", "12"]


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="one value per row"):
        flag_episodes(["A"], [True, False])

"""The notation for people: a lexicon as a grid (attributes numbered from 1, held-out objects marked), and the share
of a gap in words (a percentage only where it is one)."""

import numpy as np
import pytest

from games import all_objects
from lab.experiment.language import lexicon_grid
from lab.report.run import share_of


def test_a_two_attribute_lexicon_is_a_grid_with_the_held_out_objects_marked():
    objects = all_objects(2, 3)  # (0 0), (0 1), ..., (2 2)
    words = [f"w{a}{b}" for a, b in objects.tolist()]
    grid = lexicon_grid(objects, words, held_out=[[1, 2], [2, 0]])
    assert grid.index.name == "attribute 1" and grid.columns.name == "attribute 2"
    assert grid.shape == (3, 3)
    assert grid.loc[0, 1] == "w01" and grid.loc[1, 2] == "w12 *" and grid.loc[2, 0] == "w20 *"
    assert sum(cell.endswith(" *") for cell in grid.to_numpy().ravel()) == 2


def test_more_attributes_make_rows_of_all_but_the_last_and_missing_objects_stay_empty():
    objects = all_objects(3, 2)[:-1]  # (1 1 1) missing
    grid = lexicon_grid(objects, ["x"] * len(objects))
    assert list(grid.index.names) == ["attribute 1", "attribute 2"] and grid.columns.name == "attribute 3"
    assert grid.loc[(1, 1), 1] == "" and grid.loc[(1, 1), 0] == "x"
    assert (grid.to_numpy() != "").sum() == 7


def test_one_attribute_is_one_row_of_words():
    grid = lexicon_grid(np.arange(4)[:, None], list("abcd"), held_out=[[3]])
    assert grid.columns.name == "attribute 1" and grid.iloc[0].tolist() == ["a", "b", "c", "d *"]


@pytest.mark.parametrize("part, whole, words", [
    (1.0, 4.0, "25%"), (4.0, 4.0, "100%"), (0.0, 2.0, "0%"),
    (2.3, 2.0, "more than the whole gap"), (-0.3, 2.0, "against the gap"), (1.0, 0.0, "n/a: no gap"),
])
def test_a_share_is_a_percentage_only_where_it_is_one(part, whole, words):
    assert share_of(part, whole) == words

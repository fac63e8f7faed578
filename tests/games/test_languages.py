"""Hand-made languages: their shapes, conventions and the structure each one claims."""

import numpy as np
import pytest

import games
from games import languages

OBJECTS = games.all_objects(3, 4)


def test_compositional_says_each_attribute_value_with_its_own_symbol_in_order():
    messages = languages.compositional(OBJECTS, 4)
    assert messages.shape == (64, 4) and (messages[:, -1] == 0).all()
    for k in range(3):
        assert (messages[:, k] == 1 + 4 * k + OBJECTS[:, k]).all()
    assert languages.compositional(OBJECTS, 4, max_len=6).shape == (64, 6)


def test_free_order_keeps_each_word_s_symbols_and_shuffles_them():
    ordered, free = languages.compositional(OBJECTS, 4), languages.free_order(OBJECTS, 4, seed=3)
    assert (np.sort(free[:, :3], axis=1) == np.sort(ordered[:, :3], axis=1)).all()
    assert (free != ordered).any(axis=1).mean() > 0.5


def test_synonyms_use_two_words_per_value():
    messages = languages.synonyms(OBJECTS, 4, seed=0)
    for k in range(3):
        words = messages[:, k] - 1 - 8 * k
        assert set(np.unique(words % 4 == OBJECTS[:, k])) == {True}
        assert set(np.unique(words // 4)) == {0, 1}


def test_holistic_permuted_and_degenerate():
    holistic = languages.holistic(OBJECTS)
    assert len({tuple(m) for m in holistic}) == 64 and holistic.shape == (64, 2)
    compositional = languages.compositional(OBJECTS, 4)
    permuted = languages.permuted(compositional, seed=0)
    assert sorted(map(tuple, permuted)) == sorted(map(tuple, compositional))
    assert (languages.degenerate(OBJECTS) == [1, 0]).all()


@pytest.mark.parametrize("message, word", [([1, 2, 0], "ab"), ([0, 3, 3], "(silence)"), ([26, 27, 0], "z<27>"), ([5, 5, 5], "eee")])
def test_spell(message, word):
    assert languages.spell(np.array(message)) == word

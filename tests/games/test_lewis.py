"""The pure Lewis games: message conventions, target sampling, candidates, rewards, jit / vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import games
from games import objects
from games.lewis import Action


def make(kind="reconstruction", n_attributes=3, n_values=4, **kwargs):
    return games.make_game(kind, n_attributes, n_values, vocab_size=6, max_len=4, **kwargs)


# -- message conventions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message, truncated, length",
    [
        ([3, 1, 4, 2], [3, 1, 4, 2], 4),  # no EOS: the whole max_len
        ([3, 0, 4, 2], [3, 0, 0, 0], 2),  # content after the first EOS is dropped; EOS counts
        ([0, 5, 0, 1], [0, 0, 0, 0], 1),  # the empty message is one EOS
        ([2, 2, 2, 0], [2, 2, 2, 0], 4),
    ],
)
def test_truncate_at_eos_and_message_length(message, truncated, length):
    message = jnp.array(message)
    assert games.truncate_at_eos(message).tolist() == truncated
    assert int(games.message_length(message)) == length


def test_message_conventions_broadcast_over_leading_axes():
    messages = jnp.array([[[3, 0, 4]], [[1, 2, 3]]])  # [2, 1, 3]
    assert games.truncate_at_eos(messages).tolist() == [[[3, 0, 0]], [[1, 2, 3]]]
    assert games.message_length(messages).tolist() == [[2], [3]]


# -- reset ------------------------------------------------------------------------------------------


def test_reset_draws_targets_with_the_params_probabilities():
    game = make(n_attributes=2, n_values=2)
    probs = np.array([0.6, 0.3, 0.1, 0.0])
    params = game.default_params(objects.all_objects(2, 2), probs)
    n = 20_000
    states = jax.jit(game.sample_batch, static_argnums=2)(jax.random.key(0), params, n)
    counts = np.bincount(objects.encode(np.asarray(states.target), 2), minlength=4)
    assert counts[3] == 0  # probability zero is never drawn
    expected = n * probs[:3]
    chi2 = np.sum((counts[:3] - expected) ** 2 / expected)
    assert chi2 < scipy.stats.chi2.ppf(0.999, df=2)


def test_reset_observation_shows_the_target_to_the_speaker_only():
    game = make()
    params = game.default_params(objects.all_objects(3, 4))
    obs, state = game.reset(jax.random.key(1), params)
    assert obs.turn == 0
    assert np.array_equal(obs.target, state.target)
    assert not obs.message.any() and not obs.candidates.any()


# -- discrimination candidates ------------------------------------------------------------------------


@functools.cache
def discrimination_batch(hard_negatives, n=2000):
    game = make("discrimination", n_distractors=4, hard_negatives=hard_negatives)
    params = game.default_params(objects.all_objects(3, 4))
    return jax.jit(game.sample_batch, static_argnums=2)(jax.random.key(2), params, n)


@pytest.mark.parametrize("hard_negatives", [False, True])
def test_target_sits_at_target_index_among_distinct_candidates(hard_negatives):
    states = discrimination_batch(hard_negatives)
    candidates = np.asarray(states.candidates)  # [B, C, K]
    target_index = np.asarray(states.target_index)
    assert candidates.shape == (2000, 5, 3)
    assert np.array_equal(candidates[np.arange(2000), target_index], np.asarray(states.target))
    codes = objects.encode(candidates.reshape(-1, 3), 4).reshape(2000, 5)
    assert all(len(set(row)) == 5 for row in codes.tolist())
    # the target's position is shuffled, not fixed
    assert len(np.unique(target_index)) == 5


def mean_shared_with_target(states):
    candidates = np.asarray(states.candidates)
    shared = np.sum(candidates == np.asarray(states.target)[:, None, :], axis=-1)  # [B, C]
    is_distractor = np.arange(candidates.shape[1])[None, :] != np.asarray(states.target_index)[:, None]
    return shared[is_distractor].mean()


def test_hard_negatives_share_more_attributes_than_uniform_distractors():
    # K=3, V=4: uniform distractors share 45/63 ~ 0.71 attributes on average, hard ones ~ 1.4
    uniform = mean_shared_with_target(discrimination_batch(False))
    hard = mean_shared_with_target(discrimination_batch(True))
    assert uniform == pytest.approx(45 / 63, abs=0.05)
    assert hard > uniform + 0.4


# -- step ---------------------------------------------------------------------------------------------


def one_object_params(game):
    return game.default_params(np.array([[1, 2, 3]]))  # the target is known: [1, 2, 3]


def test_speaker_turn_gives_no_reward_and_hands_over_the_truncated_message():
    game = make()
    params = one_object_params(game)
    _, state = game.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = game.step(
        jax.random.key(0), state, Action(jnp.array([4, 0, 5, 5]), jnp.zeros(3, jnp.int32)), params
    )
    assert float(reward) == 0.0 and not terminated and not truncated and not info["success"]
    assert obs.turn == 1
    assert obs.message.tolist() == [4, 0, 0, 0]
    assert not obs.target.any()  # the listener does not see the target...
    assert not obs.candidates.any()  # ...nor, in reconstruction, the "candidate" that is the target


@pytest.mark.parametrize("guess, reward, success", [([1, 2, 3], 1.0, True), ([1, 0, 0], 1 / 3, False), ([0, 0, 0], 0.0, False)])
def test_reconstruction_reward_is_the_fraction_of_attributes_right(guess, reward, success):
    game = make()
    params = one_object_params(game)
    _, state = game.reset(jax.random.key(0), params)
    message = jnp.array([1, 1, 0, 0])
    _, state, *_ = game.step(jax.random.key(0), state, Action(message, jnp.zeros(3, jnp.int32)), params)
    _, state, r, terminated, truncated, info = game.step(jax.random.key(0), state, Action(message, jnp.array(guess)), params)
    assert float(r) == pytest.approx(reward)
    assert bool(info["success"]) == success
    assert terminated and not truncated and state.turn == 2


def test_discrimination_reward_is_one_only_at_the_target_index():
    game = make("discrimination", n_distractors=3)
    params = game.default_params(objects.all_objects(3, 4))
    _, state = game.reset(jax.random.key(5), params)
    message = jnp.array([1, 0, 0, 0])
    obs, state, *_ = game.step(jax.random.key(0), state, Action(message, jnp.zeros((), jnp.int32)), params)
    assert np.array_equal(obs.candidates, state.candidates)  # the discrimination listener sees them
    for guess in range(4):
        _, _, r, terminated, _, info = game.step(jax.random.key(0), state, Action(message, jnp.array(guess)), params)
        right = guess == int(state.target_index)
        assert float(r) == float(right) and bool(info["success"]) == right and terminated


# -- jit / vmap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["reconstruction", "discrimination"])
def test_vmap_and_jit_match_the_unbatched_calls(kind):
    game = make(kind, n_distractors=3, hard_negatives=True)
    params = game.default_params(objects.all_objects(3, 4))
    keys = jax.random.split(jax.random.key(9), 4)
    messages = jax.random.randint(jax.random.key(10), (4, 4), 0, 6)
    guess_shape = (4, 3) if kind == "reconstruction" else (4,)
    guesses = jax.random.randint(jax.random.key(11), guess_shape, 0, 4)  # V = 4 values, 4 candidates

    def episode(key, message, guess):
        _, state = game.reset(key, params)
        _, state, *_ = game.step(key, state, Action(message, jnp.zeros_like(guess)), params)
        _, state, reward, terminated, _, info = game.step(key, state, Action(message, guess), params)
        return state, reward, terminated, info["success"]

    batched = jax.jit(jax.vmap(episode))(keys, messages, guesses)
    for i in range(4):
        single = episode(keys[i], messages[i], guesses[i])
        jax.tree.map(lambda b, s: np.testing.assert_array_equal(b[i], s), batched, single)

"""lab.core.agents: every architecture keeps the agent protocol (lab.core.agents.protocol).

A sender's scores of given messages (one teacher-forced computation) equal the log-probabilities it
recorded while speaking them (another: for the transformer, decoding with a cache against one causal
pass), sum to 1 over every message the conventions allow, and score a prefix as the first positions
of the whole; a receiver's reading ignores what follows the end of a message. Untrained agents on a
tiny world (K=2, V=3, vocabulary 4, max_len 3: 40 possible messages).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import games
import lab
from lab.core.agents import Agents, make_message
from lab.core.agents.protocol import draw

CELLS = ["gru", "lstm", "transformer"]
TINY = ["game.n_attributes=2", "game.n_values=3", "game.split=none", "agents.vocab_size=4", "agents.max_len=3",
        "agents.hidden_size=16", "agents.embedding_size=8", "agents.width=16", "agents.heads=2"]


@pytest.fixture(scope="module", params=CELLS)
def agents(request):
    """(cell, sender, receiver, objects [9, 2]) of one architecture, freshly initialised."""
    cfg = lab.load(overrides=TINY + [f"agents.cell={request.param}"])
    built = Agents(cfg.game, cfg.agents)
    sender_params, receiver_params = built.init(jax.random.key(0))
    objects = jnp.array([[a, b] for a in range(3) for b in range(3)])
    return request.param, built.sender(sender_params), built.receiver(receiver_params), objects


def spoken(sender, objects):
    """Messages of each way of speaking `[3 * 9 * 4]`, with the log-probabilities recorded while decoding them."""
    key = jax.random.key(1)
    objects = jnp.tile(objects, (4, 1))  # 36 rows: sampled messages end at different positions
    keys = jax.random.split(key, sender.max_len)
    greedy, sampled = sender.greedy_and_sample_each(objects, key)
    decoded = make_message(*sender.decode(objects, draw(sender.vocab_size), keys))  # the decoding loop, whatever `sample` does
    return objects, {"greedy": greedy, "sample_each": sampled, "decoded": decoded,
                     "gumbel": sender.gumbel(objects, key, jnp.float32(0.7))}


def test_a_sender_scores_its_own_messages_as_it_spoke_them(agents):
    cell, sender, _, objects = agents
    objects, messages = spoken(sender, objects)
    for how, message in messages.items():
        np.testing.assert_allclose(sender.log_prob(objects, message.symbols), message.log_prob, atol=2e-5, err_msg=how)
    sampled = messages["decoded"].symbols
    assert np.any(np.asarray(sampled[:, 0]) == 0) and np.any(np.asarray(sampled[:, -1]) != 0)  # early and late ends
    # per position too, wherever the message is alive: the decoder's distributions are the teacher-forced ones
    key = jax.random.key(1)
    log_p, one_hot = sender.decode(objects, draw(sender.vocab_size), jax.random.split(key, sender.max_len))
    forced = sender.symbol_log_probs(objects, jnp.argmax(one_hot, -1))
    np.testing.assert_allclose(forced, log_p, atol=2e-5)


def test_sample_is_the_decoded_message_scored(agents):
    """`sample` draws what the decoding loop draws with the same key, and its log-probabilities are the message's."""
    _, sender, _, objects = agents
    objects, messages = spoken(sender, objects)
    sample = sender.sample(objects, jax.random.key(1))
    np.testing.assert_array_equal(sample.symbols, messages["decoded"].symbols)
    np.testing.assert_allclose(sample.log_prob, messages["decoded"].log_prob, atol=2e-5)
    np.testing.assert_allclose(sample.entropy, messages["decoded"].entropy, atol=2e-5)


def test_log_prob_is_a_distribution_over_all_messages(agents):
    """sum_m pi(m|x) = 1 over every message the conventions allow (EOS at t: t symbols then 0...; or max_len symbols)."""
    _, sender, _, objects = agents
    max_len, vocab = sender.max_len, sender.vocab_size
    messages = jnp.asarray([list(body) + [0] * (max_len - len(body))
                            for length in range(max_len + 1) for body in itertools.product(range(1, vocab), repeat=length)])
    n = len(messages)  # 1 + 3 + 9 + 27
    log_p = sender.log_prob(jnp.repeat(objects, n, axis=0), jnp.tile(messages, (len(objects), 1))).reshape(len(objects), n)
    np.testing.assert_allclose(np.asarray(jax.nn.logsumexp(log_p, axis=1)), 0.0, atol=1e-5)
    assert np.ptp(np.asarray(log_p)) > 0.5  # not uniform: the test could fail


def test_a_prefix_scores_the_first_positions_of_the_whole(agents):
    _, sender, _, objects = agents
    messages = sender.sample(jnp.tile(objects, (4, 1)), jax.random.key(2)).symbols
    objects = jnp.tile(objects, (4, 1))
    whole = sender.symbol_log_probs(objects, messages)
    np.testing.assert_allclose(sender.symbol_log_probs(objects, messages[:, :2]), whole[:, :2], atol=2e-5)
    picked = np.take_along_axis(np.asarray(whole), np.asarray(messages)[..., None], axis=-1)[..., 0]
    live = np.asarray(games.messages.alive(messages))
    np.testing.assert_allclose(sender.log_prob(objects, messages[:, :2]), np.sum(picked[:, :2] * live[:, :2], 1), atol=2e-5)


def test_a_reading_ignores_what_follows_the_end_of_a_message(agents):
    """The receiver reads a message where it ends: symbols after its EOS change nothing (reconstruction and candidates)."""
    _, _, receiver, objects = agents
    vocab = 4
    messages = jnp.array([[2, 0, 0], [1, 0, 0], [3, 2, 1]])
    noisy = jnp.array([[2, 0, 3], [1, 0, 2], [3, 2, 1]])  # other symbols after the first EOS
    clean, other = receiver.read(jax.nn.one_hot(messages, vocab)), receiver.read(jax.nn.one_hot(noisy, vocab))
    np.testing.assert_allclose(clean, other, atol=1e-6)
    assert clean.shape == (3, 2, 3)
    candidates = jnp.broadcast_to(objects[:4], (3, 4, 2))
    np.testing.assert_allclose(receiver.read(jax.nn.one_hot(messages, vocab), candidates),
                               receiver.read(jax.nn.one_hot(noisy, vocab), candidates), atol=1e-6)
    assert np.ptp(np.asarray(clean)) > 0.1  # different messages, different readings
